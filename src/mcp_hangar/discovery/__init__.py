"""Discovery: sources propose MCP servers; nothing joins the fleet until it is approved (or, with
``auto_register``, passes the configured checks). See docs/discovery.md."""
