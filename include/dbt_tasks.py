"""Airflow tasks for dbt: one build, then one status task per node.

``dbt.build`` runs the night's single ``dbt build`` (:func:`include.dbt_build.build`).
Every model, seed and snapshot then gets a task that shows what dbt did with
it and its tests (each test's status is the task's XCom and in its log): as
in ``dbt build``, a node whose model or a test failed is a failed task, and
the nodes dbt skipped because of it are skipped tasks. The status tasks all
hang directly off ``dbt.build`` rather than being wired like the dbt graph: a
chain of eleven levels cost about four seconds a level on a scheduler, and
dbt's own lineage is in its docs. One task per node, not per test (831), keeps
a night's Airflow overhead small.

The status tasks start in the triggerer (``start_from_trigger``) and end there
(:class:`DbtNodeTrigger` yields a task end event): on a scheduler they cost no
worker slot and no process. ``airflow dags test`` runs their ``execute``
instead, which reads the same results. A status task run again (cleared) whose
node did not succeed builds that node again (``dbt build --select``) once its
parents have succeeded in this run; clearing ``dbt.build`` with its downstream
tasks rebuilds everything that failed or was skipped.

This module is imported at DAG parse time: nothing heavy at import.
"""

from __future__ import annotations

import asyncio
from typing import Any

from airflow.sdk import BaseOperator, TaskGroup, TriggerRule
from airflow.sdk.exceptions import AirflowSkipException
from airflow.triggers.base import (
    BaseTrigger,
    StartTriggerArgs,
    TaskFailedEvent,
    TaskSkippedEvent,
    TaskSuccessEvent,
    TriggerEvent,
)

from include.dbt_build import Graph, project_graph

TRIGGER = f"{__name__}.DbtNodeTrigger"


def _outcome(run_id: str, unique_ids: list[str]):
    from include.config import settings
    from include.dbt_build import node_outcome
    from include.roles import TRANSFORMER

    return node_outcome(settings().url_as(TRANSFORMER), run_id, unique_ids)


def verdict(outcome, try_number: int) -> str:
    """What a status task does with its nodes' results: the one rule for both paths.

    "success", "rerun" (cleared by a person: build the node again), "skipped"
    (dbt skipped it because of a failure upstream) or "failed".
    """
    if outcome.ok:
        return "success"
    if try_number > 1:
        return "rerun"
    return "skipped" if outcome.skipped else "failed"


class DbtNodeTrigger(BaseTrigger):
    """Ends a dbt status task from the recorded results, without a worker."""

    def __init__(self, unique_ids: list[str], what: str):
        super().__init__()
        self.unique_ids = list(unique_ids)
        self.what = what

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return TRIGGER, {"unique_ids": self.unique_ids, "what": self.what}

    async def run(self):
        ti = self.task_instance
        outcome = await asyncio.to_thread(_outcome, ti.run_id, self.unique_ids)
        names = project_graph().names
        report = outcome.summary(names)
        decided = verdict(outcome, ti.try_number)
        if decided == "success":
            self.log.info("%s: dbt reported\n%s", self.what, report)
            yield TaskSuccessEvent(xcoms={"return_value": outcome.by_name(names)})
        elif decided == "rerun":
            yield TriggerEvent({"rerun": True})  # resumes on a worker: rerun()
        elif decided == "skipped":
            self.log.warning(
                "%s: dbt skipped it (a test it depends on failed)\n%s", self.what, report
            )
            yield TaskSkippedEvent()
        else:
            self.log.error("%s did not succeed:\n%s", self.what, report)
            yield TaskFailedEvent()


class DbtNodeStatusOperator(BaseOperator):
    """The state of some dbt nodes in this run's build: a model, or a model's tests."""

    ui_color = "#f2e5d9"

    def __init__(
        self,
        *,
        unique_ids: list[str],
        select: list[str],
        what: str,
        parents: list[str] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.unique_ids = list(unique_ids)
        self.parents = list(parents or [])
        self.select = list(select)
        self.what = what
        self.start_from_trigger = True
        self.start_trigger_args = StartTriggerArgs(
            trigger_cls=TRIGGER,
            trigger_kwargs={"unique_ids": self.unique_ids, "what": what},
            next_method="rerun",
            next_kwargs=None,
            timeout=None,
        )

    def execute(self, context) -> dict[str, str] | None:
        from include.config import CrmError

        outcome = _outcome(context["run_id"], self.unique_ids)
        names = project_graph().names
        report = outcome.summary(names)
        decided = verdict(outcome, context["ti"].try_number)
        if decided == "success":
            self.log.info("%s: dbt reported\n%s", self.what, report)
            return outcome.by_name(names)
        if decided == "rerun":
            self.rerun(context)
            return None
        if decided == "skipped":
            raise AirflowSkipException(f"{self.what}: dbt skipped it (a test it depends on failed)")
        raise CrmError(f"{self.what} did not succeed:\n{report}")

    def rerun(self, context, event: dict | None = None) -> str:
        from include.config import CrmError
        from include.dbt_build import build
        from include.pipeline import business_date_of

        if self.parents:
            parents = _outcome(context["run_id"], self.parents)
            if not parents.ok:
                raise CrmError(
                    f"{self.what}: not rebuilt, its parents have not succeeded in this run:\n"
                    f"{parents.summary(project_graph().names)}\nClear dbt.build with its downstream tasks."
                )

        report = build(
            business_date_of(context["data_interval_end"]),
            dag_run_id=context["run_id"],
            select=self.select,
        )
        return report.summary()


def dbt_status_tasks(build_task, graph: Graph | None = None, **task_args) -> None:
    """A status task for every node, one group per domain, each right after ``build_task``.

    Call inside the DAG (or a task group) context.
    """
    graph = graph or project_graph()
    groups: dict[str, TaskGroup] = {}
    tasks = []
    for uid, node in graph.nodes.items():
        if node.group not in groups:
            groups[node.group] = TaskGroup(group_id=node.group)
        with groups[node.group]:
            tasks.append(
                DbtNodeStatusOperator(
                    task_id=node.name,
                    unique_ids=[uid, *node.tests],
                    select=[node.name],
                    parents=list(node.parents),
                    what=f"{node.resource_type} {node.name} and its {len(node.tests)} tests",
                    doc_md=f"dbt {node.resource_type} `{uid}` and its tests in this run's build.",
                    **task_args,
                )
            )
    if graph.cross_tests:
        tasks.append(
            DbtNodeStatusOperator(
                task_id="cross_model_tests",
                unique_ids=sorted(graph.cross_tests),
                select=sorted(graph.test_names[t] for t in graph.cross_tests),
                parents=sorted({p for ps in graph.cross_tests.values() for p in ps}),
                what="tests across models (relationships, singular tests) and on sources",
                doc_md="dbt tests whose rows come from several models, or from sources only.",
                **task_args,
            )
        )
    for status in tasks:
        # Runs once the build finished, failed or not: the status tasks say which
        # node failed. Skipped when the build never ran (a gate failed before it).
        status.trigger_rule = TriggerRule.ONE_DONE
        build_task >> status
