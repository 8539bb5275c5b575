"""The reference lab: a Compose stack shaped like the seed's system, in two variants."""
