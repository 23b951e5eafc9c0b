"""The Gradio app (``rodentseg app``): a thin layer over the annotate, segment and track code.

- :mod:`.paths`: opening files only inside the data root;
- :mod:`.prompting`: clicks to masks for the default, not promptable, model;
- :mod:`.backends`: clicks and propagation over ``rodentseg-tiny`` or a SAM-family model;
- :mod:`.state`: one user's session (video, animals, clicks, review queue, save);
- :mod:`.save`: the result folder and training dataset;
- :mod:`.render`: frames with masks and clicks, tracks;
- :mod:`.ui`: the Gradio interface; :mod:`.cli`: the subcommand.

Only :mod:`.ui` imports gradio.
"""
