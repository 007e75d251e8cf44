"""The local cloud publishes an endpoint's metrics as SageMaker does, and evaluates a rollback alarm as
CloudWatch does: on the metric and exact dimensions it names, with its statistic over its periods."""

from __future__ import annotations

import datetime as dt

import boto3
from selfheal_bench.fixtures.hosting import ENDPOINT, blue_green, put_alarm, update_under_traffic
from selfheal_bench.localcloud.endpoint_metrics import FleetMetrics, evaluate
from selfheal_bench.localcloud.template import REGION

FLEET = {"EndpointName": ENDPOINT, "VariantName": "AllTraffic"}


class Stopwatch:
    """A clock a test sets by hand (simulated seconds)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def now(self) -> float:
        return self.seconds


def alarm(metric: str, statistic: str, threshold: float, dimensions: dict[str, str], periods: int = 1,
          to_alarm: int | None = None, namespace: str = "AWS/SageMaker") -> dict:
    return {"AlarmName": "a", "Namespace": namespace, "MetricName": metric, "Statistic": statistic,
            "Threshold": threshold, "ComparisonOperator": "GreaterThanOrEqualToThreshold", "Period": 60,
            "EvaluationPeriods": periods, "TreatMissingData": "notBreaching",
            "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
            **({"DatapointsToAlarm": to_alarm} if to_alarm else {})}


def fleets(clock: Stopwatch) -> FleetMetrics:
    return FleetMetrics(clock)


def request(metrics: FleetMetrics, config: str, *, at: float, clock: Stopwatch, error: bool = False,
            latency_ms: float = 1.0) -> None:
    """One request to a fleet, as InvokeEndpoint counts it."""
    clock.seconds = at
    stats = metrics.setdefault(f"{config}/AllTraffic")
    stats.invocations += 1
    if error:
        stats.errors_5xx += 1
    else:
        stats.latency_ms.append(latency_ms)


def test_an_average_is_the_mean_of_the_period_not_its_median():
    # Given one slow request among fast ones in the last minute
    clock = Stopwatch()
    metrics = fleets(clock)
    for at, latency in ((10, 1.0), (20, 1.0), (30, 900.0)):
        request(metrics, "new", at=at, clock=clock, latency_ms=latency)
    # Then CloudWatch's Average (in microseconds) is their mean, about 300 ms, and an alarm at 250 ms fires
    evaluation = evaluate(alarm("ModelLatency", "Average", 250_000, FLEET), ENDPOINT, metrics, now=60)
    assert evaluation.values == [(1000 + 1000 + 900_000) / 3] and evaluation.in_alarm


def test_an_error_metric_sends_a_zero_for_every_good_request():
    # Given one server error in four requests
    clock = Stopwatch()
    metrics = fleets(clock)
    for at in (1, 2, 3):
        request(metrics, "new", at=at, clock=clock)
    request(metrics, "new", at=4, clock=clock, error=True)
    # Then its Sum is 1 and its Average the error rate
    assert evaluate(alarm("Invocation5XXErrors", "Sum", 1, FLEET), ENDPOINT, metrics, now=60).values == [1.0]
    assert evaluate(alarm("Invocation5XXErrors", "Average", 1, FLEET), ENDPOINT, metrics, now=60).values == [0.25]


def test_an_alarm_needs_its_datapoints_to_alarm_within_its_evaluation_periods():
    # Given an alarm that needs two bad minutes out of its last three
    clock = Stopwatch()
    metrics = fleets(clock)
    needs_two = alarm("Invocation5XXErrors", "Sum", 1, FLEET, periods=3, to_alarm=2)
    # When one minute had an error; Then it does not fire
    request(metrics, "new", at=30, clock=clock, error=True)
    request(metrics, "new", at=90, clock=clock)
    assert not evaluate(needs_two, ENDPOINT, metrics, now=180).in_alarm
    # When a second minute has one too; Then it fires
    request(metrics, "new", at=150, clock=clock, error=True)
    assert evaluate(needs_two, ENDPOINT, metrics, now=180).values == [1.0, 0.0, 1.0]
    assert evaluate(needs_two, ENDPOINT, metrics, now=180).in_alarm
    # and once both errors are older than its three periods, it is back to OK
    assert not evaluate(needs_two, ENDPOINT, metrics, now=400).in_alarm


def test_an_alarm_sees_only_the_metric_and_the_exact_dimensions_it_names():
    # Given errors on the old fleet and on the new one
    clock = Stopwatch()
    metrics = fleets(clock)
    request(metrics, "old", at=10, clock=clock, error=True)
    request(metrics, "new", at=20, clock=clock)
    errors = "Invocation5XXErrors"
    # Then the variant's dimensions see both fleets, and the new config's only its own
    assert evaluate(alarm(errors, "Sum", 1, FLEET), ENDPOINT, metrics, now=60).in_alarm
    new_fleet = FLEET | {"EndpointConfigName": "new"}
    assert evaluate(alarm(errors, "Sum", 1, new_fleet), ENDPOINT, metrics, now=60).values == [0.0]
    # and dimensions, a namespace or a metric name SageMaker does not publish have no data: never in ALARM
    for wrong in (alarm(errors, "Sum", 1, {"EndpointName": ENDPOINT}),
                  alarm(errors, "Sum", 1, FLEET | {"VariantName": "Other"}),
                  alarm(errors, "Sum", 1, FLEET, namespace="selfheal"),
                  alarm("Invocation5xxErrors", "Sum", 1, FLEET)):
        evaluation = evaluate(wrong, ENDPOINT, metrics, now=60)
        assert evaluation.values == [None] and not evaluation.in_alarm


def test_requests_are_published_to_cloudwatch_as_sagemaker_publishes_them(hosting):
    # Given an endpoint that answered three requests and failed one
    hosting.serving(hosting.config("old"))
    assert [hosting.invoke(body) for body in ("1", "2", "3", "fail")] == [200, 200, 200, 500]
    # Then CloudWatch lists SageMaker's invocation metrics for the variant and for its config's fleet
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    listed = {(m["MetricName"], frozenset((d["Name"], d["Value"]) for d in m["Dimensions"]))
              for m in cloudwatch.list_metrics(Namespace="AWS/SageMaker")["Metrics"]}
    for metric in ("Invocations", "Invocation4XXErrors", "Invocation5XXErrors", "ModelLatency"):
        assert (metric, frozenset(FLEET.items())) in listed
        assert (metric, frozenset((FLEET | {"EndpointConfigName": "old"}).items())) in listed
    # and its statistics count every request
    now = dt.datetime.now(dt.UTC)

    def statistic(metric: str, name: str) -> float:
        (point,) = cloudwatch.get_metric_statistics(
            Namespace="AWS/SageMaker", MetricName=metric, Statistics=[name],
            Dimensions=[{"Name": k, "Value": v} for k, v in FLEET.items()],
            StartTime=now - dt.timedelta(minutes=5), EndTime=now + dt.timedelta(minutes=5), Period=600)["Datapoints"]
        return point[name]

    assert statistic("Invocations", "Sum") == 4
    assert (statistic("Invocation5XXErrors", "Sum"), statistic("Invocation5XXErrors", "Average")) == (1, 0.25)


def test_an_alarm_on_another_endpoints_dimensions_does_not_roll_a_deployment_back(hosting):
    # Given a rollback alarm on 5XX errors that names another endpoint
    hosting.serving(hosting.config("old", model="fixed"))
    elsewhere = put_alarm("elsewhere", "Invocation5XXErrors", "Sum", 1, FLEET | {"EndpointName": "other"})
    # When the new model fails every request while it bakes
    described, answers = update_under_traffic(hosting, hosting.config("new"), blue_green([elsewhere]),
                                              lambda n: "fail")
    # Then the errors happened, and the alarm, watching nothing of this endpoint, let the update through
    assert 500 in answers
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", "new")


def test_a_latency_alarm_on_the_average_rolls_back_a_model_slow_on_a_third_of_its_requests(hosting):
    # Given a rollback alarm on the new fleet's average model latency (50 ms, in microseconds)
    hosting.serving(hosting.config("old"))
    slow = put_alarm("slow", "ModelLatency", "Average", 50_000, FLEET | {"EndpointConfigName": "new"})
    # When a third of the requests the new model takes need 200 ms
    described, answers = update_under_traffic(hosting, hosting.config("new"), blue_green([slow]),
                                              lambda n: "slow" if n % 3 == 0 else "1")
    # Then the average breached, and SageMaker rolled back to the old model
    assert set(answers) == {200}
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", "old")
    assert "alarm slow went into ALARM" in described["FailureReason"]
