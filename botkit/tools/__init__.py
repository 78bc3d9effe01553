"""Developer tools: the simulator, the pytest plugin, the dev server, chat, check, graph and the botkit command."""
