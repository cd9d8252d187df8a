"""Command-line tools for the people who run the model, not stages of the graph.

``mnist registry`` (versions, promote, rollback), ``mnist monitor`` (drift of live inputs) and
``mnist report`` (a pull request's model report).
"""
