"""Fleet domain: registry, enrollment and identity, layered signed configuration, rollouts."""

__all__: list[str] = []
