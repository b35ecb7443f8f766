"""Database, tables, migrations and the server's settings: the bottom layer."""
