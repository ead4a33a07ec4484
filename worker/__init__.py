"""Worker-side code: the simulation engines and (later) the Celery task adapters around them."""
