"""Period statements a funder can cite, and what-if projections for an entry point."""
