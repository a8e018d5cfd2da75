"""A CAN Service-compatible store (`cansync store serve`): a separate program the agent reaches over HTTP."""
