"""The evaluation core and its two clocks: what a rule set does in a window, for `simulate`,
`explain` and the daemon's tick alike."""
