"""The usage page's static files (`static/`), shipped as package data; see `surfaces/ui.py`."""
