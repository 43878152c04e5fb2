"""The project package has no models of its own; this module lets it receive post_migrate."""
