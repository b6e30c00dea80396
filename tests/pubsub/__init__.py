"""Pub/Sub test servers (pstest harness, fastsub) and the pytest plugin that starts them."""
