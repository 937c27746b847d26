"""Stand-in services for AWS APIs the local emulator lacks."""
