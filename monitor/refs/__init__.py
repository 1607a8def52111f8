"""`hubwatch refs scan`: which Hub repos does our code load?

Pure parsing of Python source (python.py), notebooks (notebook.py), YAML/JSON configs
(configs.py) and the local Hugging Face cache layout (cache.py) into frozen `Reference`s
(model.py); walk.py finds the files. The Hub is asked only through monitor/hub/ (hub_state.py).
"""
