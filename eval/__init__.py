"""The research engine: the config (program.md), one experiment, one trial (= one seed), the verdict rule."""
