"""Usage pages (namespace `usage`): the explorer and license consumption, readable by any member."""
