"""How an exception that ended a command is shown (repspace.cli_errors.classify)."""

from repspace.cli_errors import EXIT_FAILED, EXIT_INPUT, classify


def _raise_from(path: str, code: str):
    """Raise what ``code`` raises, with its innermost frame in a file called ``path``."""
    namespace: dict = {}
    exec(compile(f"def forward(x):\n    {code}\n", path, "exec"), namespace)
    try:
        namespace["forward"](None)
    except Exception as exc:  # noqa: BLE001 - returned for classify
        return exc
    raise AssertionError("did not raise")


def test_a_failure_inside_the_model_library_names_it_and_its_version():
    import transformers

    exc = _raise_from(
        "/x/site-packages/transformers/models/blip_2/modeling_blip_2.py", "return x.unsqueeze(0)"
    )
    message, code = classify(exc)
    assert code == EXIT_FAILED and "\n" not in message
    assert message.startswith(
        f"the model's own code failed in transformers {transformers.__version__} "
        "(forward in models/blip_2/modeling_blip_2.py): AttributeError"
    )
    assert "please report" not in message


def test_repspace_bugs_still_ask_for_a_report_and_bad_input_is_exit_2():
    message, code = classify(_raise_from("/x/repspace/compare/engine.py", "return x[0]"))
    assert code == EXIT_FAILED and message.startswith("unexpected error: TypeError")
    assert "please report it" in message
    assert classify(ValueError("probe.txt: empty"))[1] == EXIT_INPUT
