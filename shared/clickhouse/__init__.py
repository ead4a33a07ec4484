"""ClickHouse: one client (clickhouse-connect) for a server or embedded chDB, schema migrations, field_ids, exports."""
