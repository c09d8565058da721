"""The one request path every surface shares: route, forward, meter, relay, settle (see tollway.surfaces)."""
