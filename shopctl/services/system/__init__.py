"""System: doctor, metrics and retention. The top layer: it may read every package."""
