"""The web chat (Gradio): `ui.app.serve(index_dir)` starts it, `ui.app.build_app` builds it."""
