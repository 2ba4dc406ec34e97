//! template.yaml's operations side agrees with the crate and with what the on-call person needs: the alarms
//! (each metric, statistic and threshold, TreatMissingData with its reason, actions only with AlarmTopicArn), the
//! EMF alarms and the dashboard naming exactly the namespace, dimensions and metrics src/metrics.rs writes, the
//! event source mapping's EventCount metrics, and the S3 failure destination (default) with SQS as the choice.
//! No AWS and no DynamoDB needed.

mod deploy_support;

use deploy_support::*;
use messaging_stream::metrics::{metric_names, DIMENSIONS};
use serde_json::{json, Value as Json};
use serde_norway::Value as Yaml;
use std::collections::BTreeSet;

fn j(value: &Yaml) -> Json {
    to_policy_json(value)
}

fn props<'a>(template: &'a Yaml, id: &str) -> &'a Yaml {
    at(resource(template, id), &["Properties"])
}

fn function_timeout_ms(template: &Yaml) -> u64 {
    at(props(template, "MessagingStreamFunction"), &["Timeout"])
        .as_u64()
        .expect("Timeout")
        * 1000
}

fn env_var(template: &Yaml, name: &str) -> String {
    at(
        props(template, "MessagingStreamFunction"),
        &["Environment", "Variables", name],
    )
    .as_str()
    .unwrap_or_else(|| panic!("{name} is a string"))
    .to_owned()
}

/// Every alarm of the template: (logical id, properties).
fn alarms(template: &Yaml) -> Vec<(String, &Yaml)> {
    template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::CloudWatch::Alarm"))
        .map(|(id, r)| (id.as_str().unwrap().to_owned(), &r["Properties"]))
        .collect()
}

/// (namespace, metric, statistic, threshold) of a single-metric alarm.
fn single_metric(alarm: &Yaml) -> (String, String, String, Json) {
    let statistic = alarm
        .get("Statistic")
        .or_else(|| alarm.get("ExtendedStatistic"))
        .and_then(Yaml::as_str)
        .expect("a statistic");
    (
        at(alarm, &["Namespace"]).as_str().unwrap().to_owned(),
        at(alarm, &["MetricName"]).as_str().unwrap().to_owned(),
        statistic.to_owned(),
        j(at(alarm, &["Threshold"])),
    )
}

#[test]
fn the_alarms_the_issue_asks_for_exist_with_their_metric_and_threshold() {
    let template = template();
    let timeout = function_timeout_ms(&template);
    let expected: Vec<(&str, &str, &str, &str, Json)> = vec![
        ("ErrorsAlarm", "AWS/Lambda", "Errors", "Sum", json!(0)),
        ("ThrottlesAlarm", "AWS/Lambda", "Throttles", "Sum", json!(0)),
        (
            "DurationAlarm",
            "AWS/Lambda",
            "Duration",
            "p99",
            json!(timeout * 8 / 10),
        ),
        (
            "GroupsFailedAlarm",
            "Cruddur/MessagingStream",
            "GroupsFailed",
            "Sum",
            json!(0),
        ),
        (
            "RecordsMalformedAlarm",
            "Cruddur/MessagingStream",
            "RecordsMalformed",
            "Sum",
            json!(0),
        ),
        (
            "FailureDestinationDeliveriesAlarm",
            "AWS/Lambda",
            "OnFailureDestinationDeliveredEventCount",
            "Sum",
            json!(0),
        ),
        (
            "DestinationDeliveryFailuresAlarm",
            "AWS/Lambda",
            "DestinationDeliveryFailures",
            "Sum",
            json!(0),
        ),
    ];
    for (id, namespace, metric, statistic, threshold) in expected {
        let alarm = props(&template, id);
        assert_eq!(
            single_metric(alarm),
            (
                namespace.to_owned(),
                metric.to_owned(),
                statistic.to_owned(),
                threshold
            ),
            "{id}"
        );
        assert_eq!(
            at(alarm, &["ComparisonOperator"]).as_str(),
            Some("GreaterThanThreshold"),
            "{id}"
        );
    }
    // The destination alarm reads the mapping's own metric (by its UUID: Ref of the SAM-generated mapping).
    assert_eq!(
        j(at(
            props(&template, "FailureDestinationDeliveriesAlarm"),
            &["Dimensions"]
        )),
        json!([{"Name": "EventSourceMappingUUID", "Value": {"!Ref": "MessagingStreamFunctionTableStream"}}])
    );
}

#[test]
fn the_iterator_age_alarm_is_the_maximum_over_the_parameter_in_seconds() {
    let template = template();
    let parameter = at(&template, &["Parameters", "IteratorAgeAlarmSeconds"]);
    assert_eq!(at(parameter, &["Default"]).as_u64(), Some(60));
    let alarm = props(&template, "IteratorAgeAlarm");
    assert_eq!(
        j(at(alarm, &["Threshold"])),
        json!({"!Ref": "IteratorAgeAlarmSeconds"})
    );
    let metrics = j(at(alarm, &["Metrics"]));
    assert_eq!(
        metrics[0]["MetricStat"]["Metric"]["MetricName"],
        "IteratorAge"
    );
    assert_eq!(metrics[0]["MetricStat"]["Stat"], "Maximum");
    assert_eq!(metrics[0]["ReturnData"], false);
    // IteratorAge is in milliseconds.
    assert_eq!(metrics[1]["Expression"], "age / 1000");
    assert_eq!(metrics[1]["ReturnData"], true);
}

#[test]
fn every_alarm_treats_missing_data_on_purpose_and_notifies_only_a_given_topic() {
    let template = template();
    let text = template_text();
    let lines: Vec<&str> = text.lines().collect();
    let found = alarms(&template);
    assert!(found.len() >= 8, "{} alarms", found.len());
    // Each TreatMissingData line follows its reason, a comment.
    let treat_lines: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("TreatMissingData:"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        treat_lines.len(),
        found.len(),
        "one TreatMissingData per alarm"
    );
    for i in treat_lines {
        assert!(
            lines[i - 1].trim_start().starts_with('#'),
            "template.yaml line {}: say why missing data is treated so, in a comment above it",
            i + 1
        );
    }
    let actions =
        json!({"!If": ["HasAlarmTopic", [{"!Ref": "AlarmTopicArn"}], {"!Ref": "AWS::NoValue"}]});
    for (id, alarm) in &found {
        assert!(
            ["notBreaching", "breaching", "ignore", "missing"]
                .contains(&at(alarm, &["TreatMissingData"]).as_str().unwrap_or("")),
            "{id}"
        );
        assert_eq!(j(at(alarm, &["AlarmActions"])), actions, "{id}");
        assert_eq!(j(at(alarm, &["OKActions"])), actions, "{id}");
        assert!(
            at(alarm, &["AlarmDescription"])
                .as_str()
                .is_some_and(|d| d.contains("When something fails")),
            "{id}: the description points at the runbook"
        );
    }
    assert_eq!(
        at(&template, &["Parameters", "AlarmTopicArn", "Default"]).as_str(),
        Some("")
    );
    assert_eq!(
        j(at(&template, &["Conditions", "HasAlarmTopic"])),
        json!({"!Not": [{"!Equals": [{"!Ref": "AlarmTopicArn"}, ""]}]})
    );
}

#[test]
fn the_emf_alarms_name_what_the_function_writes() {
    let template = template();
    let namespace = env_var(&template, "METRICS_NAMESPACE");
    let service = env_var(&template, "POWERTOOLS_SERVICE_NAME");
    assert_eq!(namespace, messaging_stream::metrics::DEFAULT_NAMESPACE);
    for (id, alarm) in alarms(&template) {
        if alarm.get("Namespace").and_then(Yaml::as_str) != Some(namespace.as_str()) {
            continue;
        }
        let metric = at(alarm, &["MetricName"]).as_str().unwrap();
        assert!(
            metric_names().iter().any(|name| name == metric),
            "{id}: {metric}"
        );
        assert_eq!(
            j(at(alarm, &["Dimensions"])),
            json!([
                {"Name": DIMENSIONS[0], "Value": service},
                {"Name": DIMENSIONS[1], "Value": {"!Ref": "MessagingStreamFunction"}},
            ]),
            "{id}: the document's dimensions are the service and the function's name"
        );
    }
}

/// The dashboard's body as deployed with `ReadCache` = `choice`: `!Sub [body, {ValkeyWidgets: ...}]` with
/// every placeholder replaced as !Sub would (a resource, a parameter or a pseudo parameter), as JSON.
fn dashboard_for(choice: &str) -> Json {
    let template = template_with(&[("ReadCache", choice)]);
    let body = at(props(&template, "Dashboard"), &["DashboardBody"]);
    let Yaml::Tagged(sub) = body else {
        panic!("DashboardBody is a !Sub")
    };
    assert_eq!(sub.tag, "Sub", "DashboardBody is a !Sub");
    let parts = sub.value.as_sequence().expect("!Sub [body, variables]");
    let text = parts[0].as_str().expect("the body is a string");
    let widgets = match at(&parts[1], &["ValkeyWidgets"]) {
        Yaml::String(empty) => empty.clone(),
        Yaml::Tagged(t) if t.tag == "Sub" => t.value.as_str().expect("a !Sub string").to_owned(),
        other => panic!("ValkeyWidgets: {other:?}"),
    };
    let variables: Vec<&Yaml> = parts[1].as_mapping().unwrap().keys().collect();
    assert_eq!(
        variables,
        [&Yaml::from("ValkeyWidgets")],
        "the body's variables"
    );
    let substituted = text
        .replace("${ValkeyWidgets}", &widgets)
        .replace("${AWS::Region}", "us-east-1")
        .replace(
            "${MessagingStreamFunction}",
            "cruddur-messaging-stream-prod",
        )
        .replace(
            "${MessagingStreamFunctionTableStream}",
            "9c1b4a7e-0000-4000-8000-000000000000",
        )
        .replace("${IteratorAgeAlarmSeconds}", "60")
        .replace("${Cache}", "cruddur-cache-prod");
    assert!(
        !substituted.contains("${"),
        "a placeholder left: {substituted}"
    );
    serde_json::from_str(&substituted)
        .unwrap_or_else(|e| panic!("ReadCache {choice}: the dashboard body is not JSON: {e}"))
}

/// (namespace, metric, dimensions) of every metric the dashboard shows (expressions left out).
fn dashboard_metrics(body: &Json) -> Vec<(String, String, Vec<String>)> {
    let mut metrics = Vec::new();
    for widget in body["widgets"].as_array().unwrap() {
        for metric in widget["properties"]["metrics"].as_array().unwrap() {
            let parts = metric.as_array().unwrap();
            let Some(ns) = parts[0].as_str() else {
                continue; // an expression
            };
            let dimensions = parts[2..]
                .iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect();
            metrics.push((
                ns.to_owned(),
                parts[1].as_str().unwrap().to_owned(),
                dimensions,
            ));
        }
    }
    metrics
}

/// With ReadCache valkey, and only then, the cache's own metrics: hits, misses, the ECPUs and the bytes it is
/// billed for, and its latency, by the serverless cache's name (the `clusterId` dimension).
#[test]
fn the_dashboard_shows_the_valkey_cache_only_with_valkey() {
    for choice in read_cache_choices() {
        let shown: BTreeSet<(String, Vec<String>)> = dashboard_metrics(&dashboard_for(&choice))
            .into_iter()
            .filter(|(ns, _, _)| ns == "AWS/ElastiCache")
            .map(|(_, name, dimensions)| (name, dimensions))
            .collect();
        if choice != "valkey" {
            assert!(shown.is_empty(), "ReadCache {choice}: {shown:?}");
            continue;
        }
        let by_cache = vec!["clusterId".to_owned(), "cruddur-cache-prod".to_owned()];
        let expected: BTreeSet<(String, Vec<String>)> = [
            "CacheHits",
            "CacheMisses",
            "ElastiCacheProcessingUnits",
            "BytesUsedForCache",
            "SuccessfulReadRequestLatency",
            "SuccessfulWriteRequestLatency",
        ]
        .into_iter()
        .map(|name| (name.to_owned(), by_cache.clone()))
        .collect();
        assert_eq!(shown, expected);
    }
}

#[test]
fn the_dashboard_shows_what_on_call_looks_at_first() {
    let template = template();
    let namespace = env_var(&template, "METRICS_NAMESPACE");
    for choice in read_cache_choices() {
        for (ns, name, dimensions) in dashboard_metrics(&dashboard_for(&choice)) {
            if ns == namespace {
                assert!(metric_names().contains(&name), "{name}");
                assert_eq!(dimensions[0], DIMENSIONS[0]);
                assert_eq!(dimensions[1], env_var(&template, "POWERTOOLS_SERVICE_NAME"));
                assert_eq!(dimensions[2], DIMENSIONS[1]);
            }
        }
    }
    let body = dashboard_for("none");
    let widgets = body["widgets"].as_array().unwrap();
    let shown: BTreeSet<String> = dashboard_metrics(&body)
        .into_iter()
        .map(|(_, name, _)| name)
        .collect();
    for wanted in [
        "IteratorAge",
        "RecordsReceived",
        "RecordsRelevant",
        "RecordsMalformed",
        "RowsMoved",
        "GroupsFailed",
        "Errors",
        "Throttles",
        "Duration",
        "OnFailureDestinationDeliveredEventCount",
    ] {
        assert!(
            shown.contains(wanted),
            "the dashboard has no {wanted}: {shown:?}"
        );
    }
    // Duration is drawn against the timeout.
    let duration = widgets
        .iter()
        .find(|w| w["properties"]["metrics"][0][1] == "Duration")
        .expect("a Duration widget");
    let lines: Vec<u64> = duration["properties"]["annotations"]["horizontal"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["value"].as_u64().unwrap())
        .collect();
    let timeout = function_timeout_ms(&template);
    assert!(lines.contains(&timeout), "{lines:?} vs {timeout}");
    assert!(lines.contains(&(timeout * 8 / 10)), "{lines:?}");
}

fn stream_event(template: &Yaml) -> &Yaml {
    at(
        props(template, "MessagingStreamFunction"),
        &["Events", "TableStream", "Properties"],
    )
}

#[test]
fn the_mapping_counts_its_events() {
    let template = template();
    assert_eq!(
        j(at(stream_event(&template), &["MetricsConfig"])),
        json!({"Metrics": ["EventCount"]})
    );
}

#[test]
fn failures_go_to_an_encrypted_private_expiring_bucket_by_default_or_to_sqs() {
    let template = template();
    let parameter = at(&template, &["Parameters", "FailureDestination"]);
    assert_eq!(at(parameter, &["Default"]).as_str(), Some("S3"));
    assert_eq!(j(at(parameter, &["AllowedValues"])), json!(["S3", "SQS"]));
    assert_eq!(
        j(at(
            stream_event(&template),
            &["DestinationConfig", "OnFailure", "Destination"]
        )),
        json!({"!If": ["FailuresToS3", {"!GetAtt": "FailureBucket.Arn"}, {"!GetAtt": "FailureQueue.Arn"}]})
    );
    for (id, condition) in [
        ("FailureBucket", "FailuresToS3"),
        ("FailureBucketPolicy", "FailuresToS3"),
        ("FailureQueue", "FailuresToSqs"),
        ("FailureQueuePolicy", "FailuresToSqs"),
    ] {
        assert_eq!(
            at(resource(&template, id), &["Condition"]).as_str(),
            Some(condition),
            "{id}"
        );
    }

    let bucket = props(&template, "FailureBucket");
    assert_eq!(
        j(at(bucket, &["BucketEncryption"])),
        json!({"ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    );
    assert_eq!(
        j(at(bucket, &["PublicAccessBlockConfiguration"])),
        json!({"BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true})
    );
    let rules = j(at(bucket, &["LifecycleConfiguration", "Rules"]));
    assert_eq!(rules[0]["Status"], "Enabled");
    assert_eq!(
        rules[0]["ExpirationInDays"],
        json!({"!Ref": "FailureRetentionDays"})
    );
    assert_eq!(
        at(
            &template,
            &["Parameters", "FailureRetentionDays", "Default"]
        )
        .as_u64(),
        Some(30)
    );

    let policy = j(at(
        props(&template, "FailureBucketPolicy"),
        &["PolicyDocument"],
    ));
    let deny = &policy["Statement"][0];
    assert_eq!(deny["Effect"], "Deny");
    assert_eq!(deny["Principal"], "*");
    assert_eq!(deny["Action"], "s3:*");
    assert_eq!(
        deny["Resource"],
        json!([{"!GetAtt": "FailureBucket.Arn"}, "${FailureBucket.Arn}/*"])
    );
    assert_eq!(
        deny["Condition"],
        json!({"Bool": {"aws:SecureTransport": "false"}})
    );
}
