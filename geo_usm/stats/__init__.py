"""Statistics on the grids: spatial weights, hotspots, autocorrelation and rate smoothing."""
