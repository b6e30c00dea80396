"""Adapters: the only modules that talk to Pub/Sub, Kubernetes or the network."""
