"""The console's supervision of the project: where it is and which interpreter
runs it, the listening socket, server generations and fork servers, the file
watcher, the reload policy and the session that ties them together."""
