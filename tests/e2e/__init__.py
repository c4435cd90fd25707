"""End-to-end tests: the real ``mcp-hangar`` CLI as a subprocess on a loopback port."""
