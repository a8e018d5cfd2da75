"""The agent's HTTP client of a CAN Service's sync API."""
