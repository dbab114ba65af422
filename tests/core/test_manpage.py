"""fakeproc(1) is generated from the argparse definitions (tools/manpage) and kept in step with them."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from ..conftest import REPO


@pytest.mark.skipif(importlib.util.find_spec("argparse_manpage") is None,
                    reason="argparse-manpage (the test extra) is not installed")
def test_the_man_page_is_what_the_definitions_give():
    r = subprocess.run([sys.executable, str(REPO / "tools/manpage"), "--check"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr


def test_every_option_and_command_has_help():
    import argparse

    from fakeproc.cli import build_parser
    from fakeproc.verbs import build_parser as verbs_parser

    def walk(p: argparse.ArgumentParser, where: str):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, f"{where} {name}")
            elif action.help is None and (action.option_strings or where.count(" ") == 1):
                # every option; the commands' positionals (a control verb's are its description's)
                yield f"{where} {'/'.join(action.option_strings) or action.dest}"

    missing = list(walk(build_parser(), "fakeproc")) + list(walk(verbs_parser(), "fakeproc ctl"))
    assert missing == []
