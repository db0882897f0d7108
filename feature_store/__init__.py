"""Feature definitions (the registry), table IO and the feature spec stamped on transitions."""
