from conftest import REPO


def test_dagbag_imports_the_nightly_without_errors():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"), safe_mode=False)
    assert bag.import_errors == {}
    assert set(bag.dags) == {"hintrl_nightly", "hintrl_backfill"}
    dag = bag.dags["hintrl_nightly"]
    assert set(dag.task_ids) == {"plan", "algorithms", "ingest", "features", "build_mdp", "train", "evaluate",
                                 "promote", "summary"}
    assert dag.get_task("features").upstream_task_ids >= {"ingest"}
    assert dag.get_task("build_mdp").upstream_task_ids >= {"features"}
    assert dag.get_task("evaluate").upstream_task_ids >= {"train"}
    assert dag.get_task("promote").upstream_task_ids >= {"evaluate"}
    assert {"home", "lake", "mlflow_uri", "settings", "ds"} <= set(dag.params.keys())


def test_backfill_dag_structure():
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO / "dags"), safe_mode=False).dags["hintrl_backfill"]
    assert set(dag.task_ids) == {"plan", "days", "ingest", "features", "build_mdp"}
    assert dag.get_task("features").upstream_task_ids >= {"ingest"}
    assert dag.get_task("build_mdp").upstream_task_ids >= {"features"}
    assert dag.get_task("ingest").max_active_tis_per_dagrun == 2
    assert {"start", "end", "home", "lake", "master", "settings"} <= set(dag.params.keys())
