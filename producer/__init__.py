"""Producer-side code: the client API for ETL code, the command line, SLA search, reports."""
