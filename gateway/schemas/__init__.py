"""Wire formats: pydantic models of OpenAI requests, TypedDicts of Converse."""
