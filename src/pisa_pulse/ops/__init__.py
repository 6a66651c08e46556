"""Running the system as a service: the supervisor of `pulse up` and `pulse status`."""
