"""Usage pages (namespace `usage`): the explorer and license consumption, readable by any member;
Company Settings → Applications, Licenses, Rules (namespace `usage_settings`, `settings.py`), admins only."""
