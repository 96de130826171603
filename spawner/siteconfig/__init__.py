"""The parts of ``c.Lockstep``, one mixin a concern; ``spawner.settings.Lockstep`` joins them."""
