"""The DuckDB warehouse: connections, the ordered SQL model runner and atomic publishing."""
