"""``runwright agent start``: run the due flow runs of work queues, each in its own process.

* :mod:`.api`: the agent's requests (register, the long poll, release, stop);
* :mod:`.processes`: one flow-run process per claimed run (its own process group, killed
  with the agent), its log file;
* :mod:`.child`: what that process does: fetch the deployment's code from its storage, then
  ``runwright run FILE --flow-run-id ID`` (the cloud runners' run/resume path);
* :mod:`.loop`: the agent itself (poll thread, process supervision, cancels, SIGTERM);
* :mod:`.command`: the click command.

See docs/orchestration.md#agents.
"""
