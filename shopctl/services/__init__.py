"""The house: every business rule lives here, once, for both front doors."""
