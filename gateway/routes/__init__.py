"""HTTP handlers, one module per resource; `gateway.app` assembles them."""
