"""Terminal commands for lessons: list, validate, run (interactive or --auto), quiz, progress."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click

from meshtutor.commands.common import backend_factory, kube_options
from meshtutor.errors import MeshtutorError


def _progress() -> Any:
    from meshtutor.lessons.progress import Progress

    progress = Progress()
    if progress.notice:
        click.echo(f"meshtutor: {progress.notice}", err=True)
    return progress


# --- meshtutor lessons ----------------------------------------------------------------------


@click.command("lessons")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def lessons_command(as_json: bool) -> None:
    """List the lessons with your progress."""
    from meshtutor.lessons.loader import load_lessons

    lessons = load_lessons()
    progress = _progress()
    rows = []
    for lesson in lessons:
        state = progress.lesson(lesson.id)
        rows.append(
            {
                "number": lesson.order,
                "id": lesson.id,
                "title": lesson.title,
                "mesh": lesson.mesh,
                "minutes": lesson.minutes,
                "steps": len(lesson.steps),
                "quiz": len(lesson.quiz),
                **state.to_dict(),
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    from meshtutor.commands.render import console

    table = Table(title="meshtutor lessons", show_edge=False)
    for header in ("#", "lesson", "mesh", "min", "progress", "quiz"):
        table.add_column(header)
    for row in rows:
        done = len(row["steps_done"])
        status = {
            "done": "✔ done",
            "in-progress": f"▶ {done}/{row['steps']} steps",
            "new": "· new",
        }[row["status"]]
        quiz = f"{row['quiz_best'] * 100:.0f}%" if row["quiz_best"] is not None else "-"
        table.add_row(
            f"{row['number']:02d}",
            f"{row['title']} ({row['id']})",
            row["mesh"],
            str(row["minutes"]),
            status,
            quiz,
        )
    console().print(table)
    click.echo("run one with: meshtutor run LESSON (id or number)")


# --- meshtutor lesson validate --------------------------------------------------------------


@click.group("lesson")
def lesson_group() -> None:
    """Lesson authoring tools."""


@lesson_group.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
def validate_command(paths: tuple[Path, ...]) -> None:
    """Check lesson files or folders (default: the curriculum) by replaying them on the policy
    engine. Stops at the first problem, naming its file, line and field."""
    from meshtutor.lessons.loader import validate_path

    results = [r for path in (paths or (None,)) for r in validate_path(path)]
    for lesson_path, notes in results:
        click.echo(f"✔ {lesson_path}")
        for note in notes:
            click.echo(f"  note: {note}")
    click.echo(f"{len(results)} lesson(s) valid")


# --- meshtutor run ---------------------------------------------------------------------------


@click.command("run")
@click.argument("lesson_name", metavar="LESSON", required=False)
@click.option("--all", "run_all", is_flag=True, help="Every lesson (with --auto).")
@click.option(
    "--auto",
    is_flag=True,
    help="Run every step's actions and solution and check every expectation and "
    "quiz answer, without asking anything. Exit 0 only if all pass.",
)
@click.option("--json", "as_json", is_flag=True, help="With --auto: print JSON.")
@click.option("--restart", is_flag=True, help="Start the lesson from its first step.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="With a real cluster: show what the lesson would apply (server-side dry run) and "
    "change nothing.",
)
@kube_options
def run_command(
    lesson_name: str | None,
    run_all: bool,
    auto: bool,
    as_json: bool,
    restart: bool,
    dry_run: bool,
    backend: str | None,
    context: str | None,
    kubeconfig: str | None,
    allow_remote: bool,
    adopt: bool,
    request_timeout: float,
) -> None:
    """Walk through a lesson in the terminal (the sandbox, or a real cluster)."""
    from meshtutor.lessons.loader import find_lesson, load_lessons

    kube = backend == "kube" or bool(context or kubeconfig)
    if dry_run and not kube:
        raise click.UsageError("--dry-run is for a real cluster: add --backend kube or --context")
    if adopt and not kube:
        raise click.UsageError("--adopt is for a real cluster: add --backend kube or --context")

    if run_all and not auto:
        raise click.UsageError("--all runs lessons unattended: add --auto")
    if not run_all and not lesson_name:
        raise click.UsageError("name a LESSON (id or number), or use --all --auto")
    lessons = load_lessons() if run_all else [find_lesson(lesson_name or "")]

    def factory_for(lesson: Any) -> Any:
        return backend_factory(
            backend,
            context,
            kubeconfig,
            allow_remote,
            adopt=adopt,
            request_timeout=request_timeout,
            lesson=lesson.id,
            dry_run=dry_run,
            progress=lambda line: click.echo(f"  {line}", err=True),
        )

    if dry_run:
        for lesson in lessons:
            asyncio.run(_dry_run(lesson, factory_for(lesson)))
        return
    if auto:
        reports = asyncio.run(_auto_all(lessons, quiet=as_json, factory_for=factory_for))
        if as_json:
            click.echo(json.dumps(reports, indent=2))
        failed = [r for r in reports if not r["passed"]]
        if not as_json:
            click.echo(f"{len(reports) - len(failed)}/{len(reports)} lesson(s) passed")
        sys.exit(1 if failed else 0)
    asyncio.run(_interactive(lessons[0], restart=restart, factory=factory_for(lessons[0])))


async def _dry_run(lesson: Any, factory: Any) -> None:
    """Every apply and delete of the lesson, as the API server would take it, changing nothing."""
    backend = factory(lesson.mesh)
    await backend.start()
    try:
        click.echo(f"# {lesson.id}: {lesson.title} (server-side dry run, nothing changes)")
        actions = list(lesson.topology) + [
            a for step in lesson.steps for a in (*step.actions, *step.solution)
        ]
        from meshtutor.model.loader import load_file

        for action in actions:
            if action.kind not in ("apply", "delete"):
                continue
            click.echo(f"$ {action.describe()}")
            docs = load_file(action.args["path"], default_namespace=action.args.get("namespace"))
            lines = (
                (await backend.apply(docs)).lines
                if action.kind == "apply"
                else await backend.delete(docs)
            )
            for line in lines:
                click.echo(f"  {line}")
    finally:
        await backend.stop()


async def _auto_all(
    lessons: list[Any], *, quiet: bool, factory_for: Any = None
) -> list[dict[str, Any]]:
    reports = []
    for lesson in lessons:
        report = await auto_run(lesson, factory_for(lesson) if factory_for else None)
        reports.append(report)
        if not quiet:
            mark = "✔" if report["passed"] else "✘"
            click.echo(
                f"{mark} {lesson.id}: {report['steps_passed']}/{len(lesson.steps)} steps, "
                f"quiz {report['quiz_correct']}/{len(lesson.quiz)} "
                f"({report['seconds']:.1f} s)"
            )
            for problem in report["problems"]:
                click.echo(f"    {problem}")
    return reports


async def auto_run(lesson: Any, factory: Any = None) -> dict[str, Any]:
    """Run a lesson unattended: actions, then the solution where a check fails; answer every
    quiz question with its key (predictions with the engine's answer, graded by real probes;
    manifests with the author's solution, graded on a scratch sandbox)."""
    import time

    from meshtutor.lessons.quiz import choice_text
    from meshtutor.lessons.runner import LessonRunner

    started = time.perf_counter()
    runner = LessonRunner(lesson, backend_factory=factory) if factory else LessonRunner(lesson)
    problems: list[str] = []
    steps: list[dict[str, Any]] = []
    quiz: list[dict[str, Any]] = []
    try:
        await runner.start(resume=False)
        while runner.state == "step":
            step = runner.step
            await runner.act()
            check = await runner.check()
            if not check.passed and step.solution:
                _, check = await runner.skip()
            steps.append(
                {
                    "step": step.id,
                    "passed": check.passed,
                    "problem": None if check.passed else check.summary,
                }
            )
            if not check.passed:
                problems.append(f"step {step.id}: {check.summary}")
            runner.advance()
        for question in lesson.quiz:
            if question.type in ("choice", "multiple"):
                picked = [i for i, o in enumerate(question.options) if o.correct]
                grade = runner.answer_choice(question, picked)
            elif question.type == "predict":
                scratch = await runner.scratch(question)
                outcome = scratch.predict(question.probe)
                answer = choice_text(outcome.http_code, outcome.exit_code)
                await scratch.stop()
                grade, _ = await runner.answer_prediction(question, answer)
                if answer not in question.choices:
                    grade.correct = False
                    grade.feedback.insert(0, f"{answer!r} is not among the choices")
            else:
                grade, _ = await runner.answer_manifest(question, question.solution)
            quiz.append({"question": question.id, "correct": grade.correct})
            if not grade.correct:
                problems.append(f"quiz {question.id}: " + "; ".join(grade.feedback[:3]))
        await runner.cleanup()
    except MeshtutorError as exc:
        problems.append(str(exc))
    finally:
        await runner.stop()
    steps_passed = sum(s["passed"] for s in steps)
    quiz_correct = sum(q["correct"] for q in quiz)
    return {
        "lesson": lesson.id,
        "passed": not problems
        and steps_passed == len(lesson.steps)
        and quiz_correct == len(lesson.quiz),
        "steps_passed": steps_passed,
        "quiz_correct": quiz_correct,
        "steps": steps,
        "quiz": quiz,
        "problems": problems,
        "seconds": round(time.perf_counter() - started, 2),
    }


async def _ask(prompt: str) -> str:
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(None, input, prompt)
    except EOFError:
        return "q"


async def _interactive(lesson: Any, *, restart: bool, factory: Any = None) -> None:
    from rich.rule import Rule

    from meshtutor.commands import render
    from meshtutor.lessons.runner import LessonRunner

    con = render.console()
    progress = _progress()
    if restart:
        progress.reset(lesson.id)
    runner = (
        LessonRunner(lesson, progress=progress, backend_factory=factory)
        if factory
        else LessonRunner(lesson, progress=progress)
    )
    con.print(Rule(f"{lesson.title}  ({lesson.mesh}, ~{lesson.minutes} min)"))
    con.print(lesson.summary)
    try:
        for result in await runner.start(resume=True):
            con.print(Text_dim(result.command))
        if runner.index:
            con.print(
                f"resuming at step {runner.index + 1} (meshtutor run {lesson.id} --restart "
                "starts over)"
            )
        while runner.state == "step":
            step = runner.step
            number, total = runner.step_number
            con.print(Rule(f"step {number}/{total}: {step.title}"))
            con.print(render.prose(step.prose))
            for action in step.actions:
                con.print(Text_dim(f"  will run: {action.describe()}"))
            passed = False
            while not passed:
                choice = await _ask("[Enter] run  h hint  s skip  r reset step  q quit > ")
                choice = choice.strip().lower()
                if choice == "q":
                    con.print("progress saved; come back with the same command")
                    return
                if choice == "h":
                    hint = runner.hint()
                    con.print(f"hint {hint[1]}/{hint[2]}: {hint[0]}" if hint else "no hints here")
                    continue
                try:
                    if choice == "r":
                        await runner.reset_step()
                        con.print("step reset")
                        continue
                    if choice == "s":
                        results, check = await runner.skip()
                    else:
                        results = await runner.act()
                        check = await runner.check()
                except MeshtutorError as exc:
                    # The cluster refused something (a real cluster can, at any time): say
                    # so and ask again; the learner can retry, reset the step or quit.
                    con.print(f"✘ {exc}", style="red", markup=False, highlight=False)
                    continue
                for result in results:
                    con.print(render.action_result(result, mesh=lesson.mesh))
                con.print(render.check_result(check))
                passed = check.passed
            runner.advance()
        await _quiz(runner, con)
    finally:
        await runner.cleanup()


def Text_dim(text: str) -> Any:
    from rich.text import Text

    return Text(text, style="dim")


async def _quiz(runner: Any, con: Any) -> None:
    from rich.rule import Rule

    lesson = runner.lesson
    con.print(Rule(f"quiz: {len(lesson.quiz)} questions"))
    for number, question in enumerate(lesson.quiz, start=1):
        con.print(f"\n[bold]{number}. {question.question}[/bold]")
        if question.type in ("choice", "multiple"):
            for i, option in enumerate(question.options, start=1):
                con.print(f"  {i}. {option.text}")
            hint = "one number" if question.type == "choice" else "numbers separated by spaces"
            raw = await _ask(f"your answer ({hint}) > ")
            picked = [
                int(x) - 1
                for x in raw.replace(",", " ").split()
                if x.isdigit() and 1 <= int(x) <= len(question.options)
            ]
            grade = runner.answer_choice(question, picked)
        elif question.type == "predict":
            con.print(f"  probe: {question.probe.describe()}")
            for i, choice in enumerate(question.choices, start=1):
                con.print(f"  {i}. {choice}")
            raw = (await _ask("your prediction (number) > ")).strip()
            answer = (
                question.choices[int(raw) - 1]
                if raw.isdigit() and 1 <= int(raw) <= len(question.choices)
                else raw
            )
            grade, _ = await runner.answer_prediction(question, answer)
        else:
            con.print("  starting point:")
            con.print(question.starter or "  (empty)")
            con.print("  type your YAML, then a line with a single '.', or @FILE to read a file")
            lines: list[str] = []
            while True:
                line = await _ask("")
                if line.strip() == "." or line == "q":
                    break
                if not lines and line.startswith("@"):
                    from meshtutor.errors import InputFileError
                    from meshtutor.inputfiles import read_text

                    try:
                        lines = [read_text(line[1:].strip())]
                    except InputFileError as exc:
                        con.print(f"  {exc}; try again", markup=False)
                        continue
                    break
                lines.append(line)
            grade, _ = await runner.answer_manifest(question, "\n".join(lines) + "\n")
        con.print("[green]✔ correct[/green]" if grade.correct else "[red]✘ not quite[/red]")
        for line in grade.feedback:
            con.print(f"  {line}", markup=False)
    score = runner.finish()
    con.print(f"\nquiz score: {score * 100:.0f}%. Lesson complete.")


# --- meshtutor quiz ----------------------------------------------------------------------------


@click.command("quiz")
@click.argument("lesson_name", metavar="[LESSON]", required=False)
def quiz_command(lesson_name: str | None) -> None:
    """Take a lesson's quiz in the terminal (default: the lesson you worked on last)."""
    from meshtutor.lessons.loader import find_lesson, load_lessons

    if lesson_name:
        lesson = find_lesson(lesson_name)
    else:
        progress = _progress()
        touched = [(progress.lesson(x.id).updated_at or 0, x) for x in load_lessons()]
        touched = [t for t in touched if t[0]]
        if not touched:
            raise click.UsageError("name a LESSON (id or number): you have not started any yet")
        lesson = max(touched, key=lambda t: t[0])[1]
        click.echo(f"quiz of {lesson.id} (the lesson you worked on last)")

    async def main() -> None:
        from meshtutor.commands.render import console
        from meshtutor.lessons.runner import LessonRunner

        runner = LessonRunner(lesson, progress=_progress())
        try:
            await _quiz(runner, console())
        finally:
            await runner.stop()

    asyncio.run(main())


# --- meshtutor progress ------------------------------------------------------------------------


@click.group("progress", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def progress_group(ctx: click.Context, as_json: bool) -> None:
    """Show your progress (steps done, hints used, quiz scores)."""
    if ctx.invoked_subcommand is not None:
        return
    from meshtutor.lessons.loader import load_lessons

    progress = _progress()
    states = [progress.lesson(lesson.id) for lesson in load_lessons()]
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in states], indent=2))
        return
    for s in states:
        quiz = (
            f", quiz best {s.quiz_best * 100:.0f}% ({s.quiz_attempts} attempt(s))"
            if s.quiz_best is not None
            else ""
        )
        click.echo(
            f"{s.lesson_id}: {s.status}, {len(s.steps_done)} step(s) done, "
            f"{s.hints_used} hint(s){quiz}"
        )


@progress_group.command("reset")
@click.argument("lesson_name", metavar="[LESSON]", required=False)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def progress_reset(lesson_name: str | None, yes: bool) -> None:
    """Forget the progress of one lesson, or of every lesson."""
    lesson_id = None
    if lesson_name:
        from meshtutor.lessons.loader import find_lesson

        lesson_id = find_lesson(lesson_name).id
    what = f"progress of {lesson_id}" if lesson_id else "ALL progress"
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError(f"refusing to reset {what} without --yes (no terminal to ask)")
        click.confirm(f"Reset {what}?", abort=True)
    count = _progress().reset(lesson_id)
    click.echo(f"reset {what} ({count} lesson(s) had progress)")
