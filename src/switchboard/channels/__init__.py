"""Channel adapters: one module per messaging platform, each implementing :class:`ChannelAdapter`."""
