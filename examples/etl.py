"""An example flow: extract numbers, transform each (mapped), load a total.

    runwright run examples/etl.py --param n=5
"""

from runwright import Flow, Parameter, task


@task
def extract(n: int) -> list[int]:
    return list(range(1, n + 1))


@task(max_retries=1, retry_delay=__import__("datetime").timedelta(seconds=0))
def transform(x: int) -> int:
    return x * x


@task
def load(values: list[int]) -> int:
    total = sum(values)
    print(f"loaded {len(values)} values, total {total}")
    return total


with Flow("etl") as flow:
    n = Parameter("n", default=10)
    squares = transform.map(extract(n))
    load(squares)
