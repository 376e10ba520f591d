"""HTTP routers of the courses service, one module per resource."""
