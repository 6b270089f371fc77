"""The user interfaces, over the `qa` and `index` libraries (which never import `ui`): the
command line (`ui.cli`, the `articleqa` command) and the web chat (Gradio): `ui.app.serve(index_dir)`
starts it, `ui.app.build_app` builds it."""
