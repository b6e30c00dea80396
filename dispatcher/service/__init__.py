"""The running service: the loop and its executor, the router, metrics, and their assembly."""
