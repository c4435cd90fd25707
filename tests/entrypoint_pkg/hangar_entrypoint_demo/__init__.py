"""A package that offers MCP Hangar a server (``mcp_hangar.servers``) and a source type
(``mcp_hangar.discovery_sources``) through entry points. Used by the discovery tests."""
