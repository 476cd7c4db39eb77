import pytest

from runwright import Flow, Parameter, Task, task, unmapped
from runwright.flow import FlowValidationError


@task
def add(x, y):
    return x + y


@task
def ident(x):
    return x


def test_functional_api_binds_arguments_as_keyed_edges():
    with Flow("f") as flow:
        a = add(1, 2)
        b = add(a, y=3)
    keys = {(e.upstream_task.name, e.downstream_task.name, e.key) for e in flow.edges}
    assert keys == {("add", "add", "x")}
    # literal arguments are bound to the task, not made into tasks of their own
    assert flow.constants == {a: {"x": 1, "y": 2}, b: {"y": 3}}
    assert flow.tasks == {a, b} and flow.upstream_tasks(b) == {a}
    assert flow.terminal_tasks() == {b}


def test_calling_a_task_copies_it_with_a_stable_slug():
    with Flow("f"):
        first = ident(1)
        second = ident(2)
    assert first is not second and first is not ident
    assert {first.slug, second.slug} == {"ident-1", "ident-2"}


def test_slugs_are_the_same_in_every_process_building_the_flow():
    def build():
        with Flow("same") as flow:
            ident(ident(1))
        return sorted(t.slug for t in flow.tasks)

    assert build() == build()


def test_duplicate_slug_is_rejected():
    flow = Flow("f")
    flow.add_task(Task(name="a", slug="s"))
    with pytest.raises(ValueError, match='slug "s" already exists'):
        flow.add_task(Task(name="b", slug="s"))


def test_add_task_rejects_non_tasks():
    with pytest.raises(TypeError, match="can only contain tasks"):
        Flow("f").add_task("not a task")


def test_cycles_are_detected():
    flow = Flow("f")
    a, b, c = Task("a"), Task("b"), Task("c")
    flow.add_edge(a, b)
    flow.add_edge(b, c)
    with pytest.raises(FlowValidationError, match="Cycle found"):
        flow.add_edge(c, a, validate=True)
    flow.add_edge(c, a)
    with pytest.raises(FlowValidationError, match="Cycle found"):
        flow.validate()


def test_sorted_tasks_is_topological_and_cached():
    with Flow("f") as flow:
        out = ident(ident(ident(1)))
    order = flow.sorted_tasks()
    assert order.index(out) == len(order) - 1
    assert flow.sorted_tasks() is order


def test_upstream_downstream_and_set_dependencies():
    flow = Flow("f")
    a, b, c = Task("a"), Task("b"), Task("c")
    b.set_upstream(a, flow=flow)
    b.set_downstream(c, flow=flow)
    assert flow.upstream_tasks(b) == {a} and flow.downstream_tasks(b) == {c}
    d = Task("d")
    d.set_dependencies(flow=flow, upstream_tasks=[c])
    assert flow.root_tasks() == {a} and flow.terminal_tasks() == {d}


def test_upstream_tasks_argument_adds_unkeyed_edges():
    with Flow("f") as flow:
        a = ident(1)
        b = ident(2, upstream_tasks=[a])
    assert any(e.key is None and e.upstream_task is a and e.downstream_task is b for e in flow.edges)


def test_map_marks_edges_mapped_except_unmapped():
    with Flow("f") as flow:
        m = add.map([1, 2], unmapped(10))
    edges = {e.key: e.mapped for e in flow.edges_to(m)}
    assert edges == {"x": True}  # the mapped literal list is a task: it is mapped over
    assert flow.constants[m] == {"y": 10}  # an unmapped literal goes whole to every child


def test_parameters_are_roots_with_their_name_as_slug():
    with Flow("f") as flow:
        p = Parameter("p", default=2)
        ident(p)
    assert flow.parameters() == {p} and p.slug == "p" and not p.required
    with pytest.raises(ValueError, match="root tasks"):
        flow.add_edge(Task("t"), p)


def test_reference_tasks_default_to_terminal_tasks_and_must_be_in_flow():
    with Flow("f") as flow:
        a = ident(1)
        b = ident(a)
    assert flow.reference_tasks() == {b}
    flow.set_reference_tasks([a])
    assert flow.reference_tasks() == {a}
    with pytest.raises(ValueError, match="must be part of the flow"):
        flow.set_reference_tasks([Task("x")])


def test_calling_a_task_outside_a_flow_is_a_clear_error():
    with pytest.raises(ValueError, match="Could not infer an active Flow"):
        ident(1)


def test_bad_arguments_name_the_task():
    with Flow("f"):
        with pytest.raises(TypeError, match="Task 'add'"):
            add(1, 2, 3)


def test_task_run_signature_rules():
    with pytest.raises(ValueError, match="variable positional"):
        task(lambda *args: None)
    with pytest.raises(ValueError, match="reserved"):

        class Bad(Task):
            def run(self, upstream_tasks):
                pass


def test_task_argument_validation():
    import datetime

    with pytest.raises(ValueError, match="retry_delay"):
        Task(max_retries=1)
    with pytest.raises(TypeError, match="timeout"):
        Task(timeout="10")
    with pytest.raises(TypeError, match="tags"):
        Task(tags="one")
    with pytest.raises(TypeError, match="state_handlers"):
        Task(state_handlers={lambda *a: None})
    with pytest.warns(UserWarning, match="no effect without cache_for"):
        Task(cache_validator=lambda *a: True)
    assert Task(cache_for=datetime.timedelta(1)).cache_validator.__name__ == "duration_only"


def test_collections_of_tasks_become_collection_tasks():
    with Flow("f") as flow:
        a, b = ident(1), ident(2)
        total = ident([a, b])
    state = flow.run()
    assert state.result[total].result == [1, 2]


def test_collections_mixing_tasks_and_literals_keep_their_order_and_kind():
    class Overriding(Flow):  # a building method overridden: the general path (bind)
        def add_task(self, task):
            return super().add_task(task)

    for flow_class in (Flow, Overriding):
        with flow_class("f") as flow:
            a, b = ident(1), ident(2)
            as_list = ident([a, 10, b, "x"])
            as_tuple = ident((b, a, 3))
            as_set = ident({a, b, 5})
        state = flow.run()
        assert state.result[as_list].result == [1, 10, 2, "x"]
        assert state.result[as_tuple].result == (2, 1, 3)
        assert state.result[as_set].result == {1, 2, 5}
        collection = next(e.upstream_task for e in flow.edges_to(as_list))
        assert type(collection).__name__ == "List"
        assert {e.key for e in flow.edges_to(collection)} == {"arg_0", "arg_2"}
        assert dict(flow.constants[collection]) == {"arg_1": 10, "arg_3": "x"}


def test_flow_needs_a_name():
    with pytest.raises(ValueError, match="needs a name"):
        Flow("")


def test_flows_pickle_with_cloudpickle():
    import cloudpickle

    with Flow("f") as flow:
        ident(ident(3))
    clone = cloudpickle.loads(cloudpickle.dumps(flow))
    assert clone.run().is_successful() and len(clone.edges) == len(flow.edges)


def test_a_copy_stores_only_what_differs_and_reads_as_the_original():
    import datetime

    @task(max_retries=2, retry_delay=datetime.timedelta(seconds=1), tags=["t"])
    def retried(x):
        return x

    with Flow("f"):
        plain, other = ident(1), retried(2)
    assert set(vars(plain)) == {"run", "name", "slug"}  # the rest comes from the class
    assert (plain.max_retries, plain.timeout, plain.checkpoint, plain.tags, plain.state_handlers) == (0, None, False, set(), [])
    assert other.max_retries == 2 and other.tags == {"t"} and other.tags is not retried.tags
    other.state_handlers.append(print)
    assert retried.state_handlers == [] and other.copy().state_handlers == [print]

    class Strict(Task):
        max_retries = 5  # a class attribute is hidden by the value Task.__init__ sets, as ever

    assert Strict().max_retries == 0


def test_many_keyed_edges_into_one_task_stay_unique_and_exclusive():
    with Flow("wide") as flow:
        parts = [ident(i) for i in range(20)]
        whole = ident(parts)  # a List task with 20 keyed edges in
    collector = next(iter(flow.upstream_tasks(whole)))
    assert len(flow.edges_to(collector)) == 20
    flow.add_edge(parts[3], collector, key="arg_3")  # the same edge again: nothing changes
    assert len(flow.edges_to(collector)) == 20 and len(flow.edges) == 21
    with pytest.raises(ValueError, match='Argument "arg_3" of task .List. is already bound to a task'):
        flow.add_edge(parts[4], collector, key="arg_3")
    with pytest.raises(ValueError, match="already bound to a task"):
        flow.bind_constant(collector, "arg_5", 1)


def test_literal_arguments_read_compare_and_pickle_as_dicts():
    import pickle

    with Flow("f") as flow:
        one = ident(1)
        two = add(1, y=2)
    assert flow.constants[one] == {"x": 1} and repr(flow.constants[one]) == "{'x': 1}"
    flow.constants[one]["y"] = 2
    assert dict(flow.constants[one]) == {"x": 1, "y": 2} and flow.constants[two] == {"x": 1, "y": 2}
    assert pickle.loads(pickle.dumps(flow.constants[two])) == {"x": 1, "y": 2}
    with Flow("g") as other:
        three = ident(3)
    clone = pickle.loads(pickle.dumps(other.constants[three]))
    assert clone == {"x": 3} and type(clone) is type(other.constants[three])


def test_a_new_parameter_given_a_task_argument_is_refused():
    # a new task with only arguments takes set_dependencies' shortcut; a Parameter does not
    @task
    def one():
        return 1

    flow = Flow("parameter upstream")
    with pytest.raises(ValueError, match="Parameters must be root tasks"):
        flow.set_dependencies(Parameter("x"), keyword_tasks={"a": one.copy()})
