"""`./run.sh hardening`: run the attack and fault suites, print what was tried, what held, what was lost.

The suites are tests/test_attacks.py (an agent taking the shortest path to a better number)
and tests/test_faults.py (crashes, dying daemons, corrupt files). A small pytest plugin sorts
each test into a category by the function it runs (a Bash attack on git counts under git) and
the table is printed at the end; README carries it. Exit status 1 when any attempt got through
or anything was lost, so CI can run it as is. Extra arguments go to pytest (e.g. -k ledger).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import pytest

SUITES = ("tests/test_attacks.py", "tests/test_faults.py")
ROOT = Path(__file__).resolve().parent.parent

# test function -> category, in the order the table lists them.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "policy: shell, paths, every tool": (
        "test_bash_attack_denied", "test_harmless_lines_allowed_as_literal",
        "test_option_shaped_hypothesis_cannot_change_the_run", "test_tool_attack", "test_web_attack",
        "test_websearch_without_domains_is_pinned_to_the_phase", "test_subagent_context_does_not_change_the_decision",
    ),
    "launch wrappers: nothing hidden around ./run.sh": (
        "test_a_wrapper_cannot_hide_a_second_command",
        "test_the_hook_rewrites_a_wrapped_run_to_exactly_the_canonical_call",
        "test_xargs_cannot_be_handed_a_name_it_would_split_into_a_sealed_path",
    ),
    "git: push, reset, amend, refs": ("test_hypothesis_cannot_forge_the_commit_trailer",),
    "runtime: train.py in the sandbox": (
        "test_proc_and_signal_tricks_fail_and_the_run_is_scored",
        "test_log_bomb_is_capped_in_the_log_and_on_the_terminal",
        "test_log_sink_caps_a_bomb_in_many_small_chunks", "test_disk_bomb_in_tmp_hits_its_cap",
        "test_huge_exported_model_is_a_crash_within_the_cap", "test_sparse_file_in_out_does_not_reach_the_host_disk",
        "test_inode_bomb_in_out_does_not_reach_the_host_disk",
        "test_train_py_ignoring_the_budget_and_signals_is_killed",
        "test_slow_exported_model_times_out_as_a_crash", "test_non_causal_model_is_rejected",
        "test_wrongly_shaped_logits_are_rejected_with_the_reason",
        "test_exported_model_cannot_read_the_validation_split_while_scored",
    ),
    "results: metrics, ledger, seed, budget": (
        "test_forged_result_files_from_train_py_change_nothing",
        "test_seed_and_budget_come_from_the_harness_not_the_environment",
        "test_the_agent_cannot_rewrite_results_or_refs_through_any_tool",
    ),
    "guard gaps: option spellings, worktrees, edit sizes, fail-open": (
        "test_a_broken_guard_blocks_every_call_through_the_real_cli",
        "test_a_file_named_in_an_option_passes_the_path_rules", "test_a_file_option_on_a_readable_file_is_allowed",
        "test_every_spelling_of_an_option_gets_the_same_decision", "test_abbreviated_options_are_refused",
        "test_a_subagent_may_not_leave_the_repository_or_the_guard",
        "test_worktree_isolation_creates_no_worktree_through_the_real_cli",
        "test_an_edit_cannot_bloat_the_editable_files",
        "test_the_loop_refuses_to_start_research_without_a_live_guard",
    ),
    "output: verdicts, terminal escapes, invisible text": (
        "test_escape_sequences_from_train_py_reach_no_terminal_log_or_verdict_raw",
        "test_log_sink_neutralises_across_chunk_boundaries",
        "test_post_tool_use_tells_the_verdict_of_the_calls_own_run_whatever_its_output",
        "test_a_refused_run_is_not_told_an_earlier_verdict_it_printed",
        "test_run_sh_output_stays_short_whatever_train_py_prints",
        "test_hypothesis_with_an_invisible_character_is_refused_by_the_guard",
        "test_the_guard_hook_names_a_tag_character_in_a_hypothesis",
        "test_hypothesis_with_an_invisible_character_is_refused_by_the_engine",
        "test_ledger_rows_and_commit_messages_cannot_carry_invisible_characters",
        "test_cli_agent_is_told_the_real_verdict_of_a_loud_run_and_replay_reads_only_runs",
        "test_replay_reads_verdicts_and_seed_values_only_from_experiment_runs",
        "test_a_silent_train_py_adds_only_a_handful_of_heartbeat_lines",
    ),
    "scorer: no code from the archive, its output sealed": (
        "test_malicious_archive_is_refused_before_anything_in_it_runs",
        "test_the_archive_attacks_are_live_under_torch_export_load",
        "test_a_plain_exported_archive_is_accepted_and_unchanged",
        "test_sample_inputs_of_plain_tensors_and_data_are_accepted",
        "test_a_program_that_prints_a_score_line_is_refused",
        "test_malicious_archive_scored_in_the_sandbox_forges_nothing",
        "test_pickle_laden_archive_from_train_py_is_a_crash_and_leaks_nothing",
        "test_scorer_output_cannot_be_read_by_the_agent", "test_scorer_output_cannot_be_read_with_the_read_tool",
    ),
    "fault: Docker daemon killed mid-run": ("test_docker_daemon_killed_mid_run",),
    "fault: kill -9 of each hook, each stage": ("test_hook_killed_fails_closed_and_recovery_completes",),
    "fault: output dir full": ("test_output_dir_full_is_a_crash_with_its_log_and_the_loop_goes_on",),
    "fault: corrupt ledger, concurrent appends": ("test_corrupt_ledger_lines_under_concurrent_appends_lose_nothing",),
    "fault: two ./run.sh at once": ("test_second_run_sh_is_refused_and_the_first_completes",),
    "fault: program.md broken mid-loop": (
        "test_program_md_broken_mid_loop_stops_runs_loses_nothing_and_the_fix_resumes",
    ),
    "budget: the harness's clock ends training": (
        "test_a_multiplied_budget_is_overtime_and_never_kept",
        "test_ignoring_the_stop_signal_is_overtime_killed_at_the_grace",
        "test_sleeping_through_start_up_and_forging_the_marker_do_not_move_the_clock",
        "test_training_in_the_export_window_is_overtime", "test_compute_hidden_in_a_child_process_is_counted",
    ),
    "held-out data: invisible to training, proven by a scan": (
        "test_rerunning_the_split_rule_in_the_sandbox_rebuilds_no_held_out_file",
        "test_known_held_out_lines_are_nowhere_in_the_visible_standard_libraries",
        "test_hidden_modules_cannot_be_imported_nor_their_bytecode_read",
        "test_the_system_pythons_copies_are_hidden_too",
        "test_the_held_out_check_passes_on_the_default_corpus_and_is_kept",
        "test_the_rebuild_attack_finds_nothing_under_bubblewrap",
        "test_a_symlink_into_a_hidden_package_leads_to_its_empty_mask",
        "test_a_visible_copy_of_held_out_text_fails_the_check_and_training_is_refused",
        "test_a_corpus_the_sandbox_can_see_is_masked_where_it_shows",
        "test_an_own_split_inside_mounted_project_code_shows_its_held_out_files_empty",
        "test_data_frozen_by_the_old_split_rule_is_refused_by_the_scan",
        "test_unsafe_mode_says_plainly_that_nothing_is_hidden",
    ),
}
BY_FUNCTION = {name: category for category, names in CATEGORIES.items() for name in names}
GIT = "git: push, reset, amend, refs"
UNSORTED = "unsorted (add it to tests/hardening.py)"  # a new test is counted, never hidden


def category(item: pytest.Item) -> str:
    """The category of one collected test; Bash attacks that run git count under git."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    command = params.get("command")
    if isinstance(command, str) and command.split()[:1] == ["git"]:
        return GIT
    return BY_FUNCTION.get(getattr(item, "originalname", item.name), UNSORTED)


class Tally:
    """A pytest plugin: each test's category and whether every phase of it passed."""

    def __init__(self) -> None:
        self.categories: dict[str, str] = {}
        self.failed: dict[str, str] = {}  # nodeid -> the phase that failed (or was skipped)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.categories = {item.nodeid: category(item) for item in session.items}  # after -k deselected

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed or report.skipped:  # a skip is not a held attack either
            self.failed.setdefault(report.nodeid, f"{report.when} {report.outcome}")

    def rows(self) -> list[tuple[str, int, int, int]]:
        tried, failed = Counter(self.categories.values()), Counter(self.categories[n] for n in self.failed)
        order = [*CATEGORIES, UNSORTED]
        return [(c, tried[c], tried[c] - failed[c], failed[c]) for c in order if tried[c]]


def table(rows: list[tuple[str, int, int, int]], seconds: float) -> str:
    total = [sum(col) for col in zip(*(r[1:] for r in rows), strict=True)] if rows else [0, 0, 0]
    lines = ["| category | tried | held | failed |", "|---|---:|---:|---:|"]
    lines += [f"| {c} | {tried} | {held} | {failed} |" for c, tried, held, failed in rows]
    lines.append(f"| **total** | **{total[0]}** | **{total[1]}** | **{total[2]}** |")
    lines.append(f"\n{total[0]} attempts in {seconds:.0f} s; "
                 + ("nothing got through and nothing was lost." if total[0] and not total[2] else
                    f"{total[2]} did not hold (see the failures above)."))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    tally = Tally()
    t0 = time.monotonic()
    code = pytest.main(["-q", "-p", "no:cacheprovider", *(str(ROOT / s) for s in SUITES), *argv], plugins=[tally])
    print("\n" + table(tally.rows(), time.monotonic() - t0))
    for nodeid, phase in sorted(tally.failed.items()):
        print(f"did not hold: {nodeid} ({phase})")
    return 0 if code == 0 and tally.categories and not tally.failed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
