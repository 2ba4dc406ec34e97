//! template.yaml agrees with the crate: the binary SAM builds exists, the names the function reads from its
//! environment are the ones the template creates, and the Timeout covers the SDK's retry budget.

mod deploy_support;

use deploy_support::*;
use serde_norway::Value as Yaml;
use std::collections::BTreeSet;

/// `name = "..."` of every `[[bin]]` table of Cargo.toml (a line-based reading: enough for this Cargo.toml,
/// whose bins are all declared explicitly).
fn cargo_bins(manifest: &str) -> Vec<String> {
    let mut bins = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin {
            if let Some(value) = line.strip_prefix("name").map(str::trim_start) {
                if let Some(value) = value.strip_prefix('=') {
                    bins.push(value.trim().trim_matches('"').to_owned());
                }
            }
        }
    }
    bins
}

fn function(template: &Yaml) -> &Yaml {
    resource(template, "MessagingStreamFunction")
}

#[test]
fn build_properties_binary_is_a_cargo_bin() {
    let manifest = std::fs::read_to_string(crate_dir().join("Cargo.toml")).expect("Cargo.toml");
    let bins = cargo_bins(&manifest);
    assert!(
        bins.contains(&"messaging-stream".to_owned()),
        "Cargo.toml bins: {bins:?}"
    );
    let template = template();
    let function = function(&template);
    assert_eq!(
        at(function, &["Metadata", "BuildMethod"]).as_str(),
        Some("rust-cargolambda")
    );
    let binary = at(function, &["Metadata", "BuildProperties", "Binary"])
        .as_str()
        .expect("Binary is a string");
    assert!(
        bins.iter().any(|b| b == binary),
        "BuildProperties Binary {binary:?} is not a [[bin]] of Cargo.toml ({bins:?})"
    );
}

#[test]
fn cargo_bins_reads_bin_tables_only() {
    let manifest =
        "[package]\nname = \"pkg\"\n[[bin]]\nname = \"a\"\npath = \"x\"\n[lib]\nname = \"l\"\n[[bin]]\nname=\"b\"\n";
    assert_eq!(cargo_bins(manifest), ["a", "b"]);
}

#[test]
fn code_uri_is_this_crate_and_runtime_is_custom_arm64() {
    let template = template();
    let props = at(function(&template), &["Properties"]);
    let code_uri = at(props, &["CodeUri"]).as_str().expect("CodeUri");
    assert!(
        crate_dir().join(code_uri).join("Cargo.toml").is_file(),
        "CodeUri {code_uri} (relative to template.yaml) must be the crate"
    );
    assert_eq!(at(props, &["Runtime"]).as_str(), Some("provided.al2023"));
    assert_eq!(at(props, &["Handler"]).as_str(), Some("bootstrap"));
    assert_eq!(
        at(props, &["Architectures"]),
        &serde_norway::from_str::<Yaml>("[arm64]").unwrap()
    );
}

#[test]
fn environment_names_what_the_template_creates() {
    let template = template();
    let variables = at(
        function(&template),
        &["Properties", "Environment", "Variables"],
    );
    // TABLE_NAME is the parameter the table is created with.
    let table_name = at(variables, &["TABLE_NAME"]);
    assert_eq!(
        table_name,
        at(
            resource(&template, "MessagesTable"),
            &["Properties", "TableName"]
        )
    );
    // GROUP_INDEX_NAME is the table's GSI, and the index the policy lets the function query.
    let index = at(variables, &["GROUP_INDEX_NAME"])
        .as_str()
        .expect("index name");
    let gsis = at(
        resource(&template, "MessagesTable"),
        &["Properties", "GlobalSecondaryIndexes"],
    )
    .as_sequence()
    .expect("GSIs");
    assert!(gsis
        .iter()
        .any(|g| at(g, &["IndexName"]).as_str() == Some(index)));
    let policy = policy_file("execution-dynamodb").to_string();
    assert!(
        policy.contains(&format!("/index/{index}\"")),
        "policies/execution-dynamodb.json does not grant Query on index {index}"
    );
    // Lambda sets AWS_LAMBDA_LOG_* from LoggingConfig; setting them (reserved names) fails the deploy.
    let names: Vec<&str> = variables
        .as_mapping()
        .unwrap()
        .keys()
        .filter_map(Yaml::as_str)
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with("AWS_LAMBDA_")),
        "{names:?}"
    );
    assert_eq!(
        at(
            function(&template),
            &["Properties", "LoggingConfig", "LogFormat"]
        )
        .as_str(),
        Some("JSON")
    );
}

/// One DynamoDB call that keeps failing: every attempt times out (5 s, the SDK's per-attempt timeout set in code)
/// and the standard/adaptive retry backs off at most 1, 2, 4, 8... s (capped at 20 s) between attempts. The
/// template's comment explains why Timeout allows two such calls back to back.
#[test]
fn timeout_covers_two_calls_that_exhaust_their_retries() {
    const ATTEMPT_TIMEOUT_S: u64 = 5;
    let template = template();
    let props = at(function(&template), &["Properties"]);
    let attempts: u64 = at(props, &["Environment", "Variables", "AWS_MAX_ATTEMPTS"])
        .as_str()
        .expect("AWS_MAX_ATTEMPTS is a string")
        .parse()
        .expect("AWS_MAX_ATTEMPTS is a number");
    let backoff: u64 = (0..attempts.saturating_sub(1))
        .map(|retry| (1u64 << retry).min(20))
        .sum();
    let one_call = attempts * ATTEMPT_TIMEOUT_S + backoff;
    let timeout = at(props, &["Timeout"]).as_u64().expect("Timeout");
    assert!(
        timeout >= 2 * one_call,
        "Timeout {timeout} s < 2 x {one_call} s (one call exhausting {attempts} attempts)"
    );
    assert!(timeout <= 900, "Lambda's maximum Timeout is 900 s");
}

/// The default deployment pays for no cache: no cache table, no CACHE_TABLE_NAME (so the function makes no
/// cache request), no cache grant, no cache output; nothing left that names the cache table.
#[test]
fn the_default_parameters_make_no_read_cache() {
    let template = template();
    let read_cache = at(&template, &["Parameters", "ReadCache"]);
    assert_eq!(at(read_cache, &["Default"]).as_str(), Some("none"));
    assert_eq!(
        at(read_cache, &["AllowedValues"]),
        &serde_norway::from_str::<Yaml>("[none, dynamodb, valkey]").unwrap()
    );
    let deployed = template_with(&[]);
    assert!(
        deployed
            .get("Resources")
            .and_then(|r| r.get("CacheTable"))
            .is_none(),
        "the default deployment creates CacheTable"
    );
    let variables = at(
        function(&deployed),
        &["Properties", "Environment", "Variables"],
    );
    assert!(variables.get("TABLE_NAME").is_some());
    assert!(
        variables.get("CACHE_TABLE_NAME").is_none(),
        "the default deployment sets CACHE_TABLE_NAME: {variables:?}"
    );
    assert!(deployed
        .get("Outputs")
        .and_then(|o| o.get("CacheTableName"))
        .is_none());
    // What is deployed (the parameter's own description may name the cache).
    let text = ["Resources", "Outputs"]
        .map(|section| serde_norway::to_string(at(&deployed, &[section])).unwrap())
        .join("\n");
    assert_no_valkey(&deployed);
    for needle in [
        "CacheTable",
        "-cache-",
        "BatchWriteItem",
        "VALKEY_",
        "ElastiCache",
        "elasticache",
        "CacheClientSecurityGroup",
    ] {
        assert!(
            !text.contains(needle),
            "the default deployment still has {needle:?}"
        );
    }
}

/// ReadCache dynamodb: the cache table, and the function told its name.
#[test]
fn read_cache_dynamodb_makes_the_cache_table_and_names_it_to_the_function() {
    let deployed = template_with(&[("ReadCache", "dynamodb")]);
    let cache = resource(&deployed, "CacheTable");
    assert_eq!(at(cache, &["Type"]).as_str(), Some("AWS::DynamoDB::Table"));
    assert_eq!(
        at(
            function(&deployed),
            &["Properties", "Environment", "Variables", "CACHE_TABLE_NAME"]
        ),
        &serde_norway::from_str::<Yaml>("!Ref CacheTable").unwrap()
    );
    assert!(deployed
        .get("Outputs")
        .and_then(|o| o.get("CacheTableName"))
        .is_some());
    // One cache at a time: nothing of the Valkey cache.
    assert_no_valkey(&deployed);
}

fn yaml(text: &str) -> Yaml {
    serde_norway::from_str(text).unwrap()
}

fn assert_no_valkey(deployed: &Yaml) {
    let resources = at(deployed, &["Resources"]);
    for id in [
        "Cache",
        "CacheUser",
        "CacheReaderUser",
        "CacheDefaultUser",
        "CacheUserGroup",
        "CacheSecurityGroup",
        "CacheClientSecurityGroup",
        "CacheSecurityGroupIngress",
    ] {
        assert!(resources.get(id).is_none(), "{id} without ReadCache valkey");
    }
    let variables = at(
        function(deployed),
        &["Properties", "Environment", "Variables"],
    );
    for name in ["VALKEY_ENDPOINT", "VALKEY_USER", "VALKEY_CACHE_NAME"] {
        assert!(
            variables.get(name).is_none(),
            "{name} without ReadCache valkey"
        );
    }
    assert_eq!(
        at(
            function(deployed),
            &["Properties", "VpcConfig", "SecurityGroupIds"]
        ),
        &yaml("!Ref SecurityGroupIds")
    );
}

/// An access string's (keys, commands): `~pattern`s and `+command`s; panics on anything else but `on`/`off`
/// and `-@all` (every grant is named, nothing by category).
fn access(text: &str) -> (bool, BTreeSet<String>, BTreeSet<String>) {
    let mut on = None;
    let (mut keys, mut commands) = (BTreeSet::new(), BTreeSet::new());
    for word in text.split_whitespace() {
        match word {
            "on" => on = Some(true),
            "off" => on = Some(false),
            "-@all" => {}
            _ if word.starts_with('~') => {
                keys.insert(word[1..].to_owned());
            }
            _ if word.starts_with('+') && !word.starts_with("+@") => {
                commands.insert(word[1..].to_owned());
            }
            other => panic!("access string {text:?}: {other:?} is not a named key or command"),
        }
    }
    (on.expect("on or off, said explicitly"), keys, commands)
}

/// ReadCache valkey: ElastiCache Serverless for Valkey in the function's subnets, reachable only from the
/// function's own group on 6379, IAM users only (the function's may only DEL), a default user that can never
/// log in, and the function told where the cache is and whom to connect as. No cache table.
#[test]
fn read_cache_valkey_makes_the_cache_in_the_function_subnets_and_names_it_to_the_function() {
    let deployed = template_with(&[("ReadCache", "valkey")]);
    assert!(
        at(&deployed, &["Resources"]).get("CacheTable").is_none(),
        "one cache at a time"
    );
    let cache = resource(&deployed, "Cache");
    assert_eq!(
        at(cache, &["Type"]).as_str(),
        Some("AWS::ElastiCache::ServerlessCache")
    );
    let props = at(cache, &["Properties"]);
    assert_eq!(at(props, &["Engine"]).as_str(), Some("valkey"));
    assert!(matches!(
        at(props, &["MajorEngineVersion"]).as_str(),
        Some("7" | "8")
    ));
    assert_eq!(at(props, &["SubnetIds"]), &yaml("!Ref SubnetIds"));
    assert_eq!(
        at(props, &["SecurityGroupIds"]),
        &yaml("[!Ref CacheSecurityGroup]")
    );
    assert_eq!(at(props, &["UserGroupId"]), &yaml("!Ref CacheUserGroup"));

    // The network: into the cache only 6379, only from the client group, which the function carries.
    let groups = at(&deployed, &["Resources"]).as_mapping().unwrap();
    let ingress: Vec<&Yaml> = groups
        .values()
        .filter(|r| at(r, &["Type"]).as_str() == Some("AWS::EC2::SecurityGroupIngress"))
        .map(|r| at(r, &["Properties"]))
        .collect();
    assert_eq!(ingress.len(), 1, "{ingress:?}");
    assert_eq!(
        at(ingress[0], &["GroupId"]),
        &yaml("!Ref CacheSecurityGroup")
    );
    assert_eq!(
        at(ingress[0], &["SourceSecurityGroupId"]),
        &yaml("!Ref CacheClientSecurityGroup")
    );
    assert_eq!(at(ingress[0], &["IpProtocol"]).as_str(), Some("tcp"));
    assert_eq!(at(ingress[0], &["FromPort"]).as_u64(), Some(6379));
    assert_eq!(at(ingress[0], &["ToPort"]).as_u64(), Some(6379));
    let cache_group = at(resource(&deployed, "CacheSecurityGroup"), &["Properties"]);
    assert!(cache_group.get("SecurityGroupIngress").is_none());
    let client_egress = at(
        resource(&deployed, "CacheClientSecurityGroup"),
        &["Properties", "SecurityGroupEgress"],
    )
    .as_sequence()
    .unwrap();
    assert_eq!(client_egress.len(), 1);
    assert_eq!(
        at(&client_egress[0], &["DestinationSecurityGroupId"]),
        &yaml("!Ref CacheSecurityGroup")
    );
    assert_eq!(at(&client_egress[0], &["FromPort"]).as_u64(), Some(6379));
    assert_eq!(at(&client_egress[0], &["ToPort"]).as_u64(), Some(6379));
    let function_groups = serde_norway::to_string(at(
        function(&deployed),
        &["Properties", "VpcConfig", "SecurityGroupIds"],
    ))
    .unwrap();
    for wanted in ["!Ref SecurityGroupIds", "!Ref CacheClientSecurityGroup"] {
        assert!(function_groups.contains(wanted), "{function_groups}");
    }

    // The users: IAM (UserName = UserId), named keys and commands; the default user off and granted nothing.
    let user = |id: &str| at(resource(&deployed, id), &["Properties"]);
    let group = at(resource(&deployed, "CacheUserGroup"), &["Properties"]);
    assert_eq!(
        at(group, &["UserIds"]),
        &yaml("[!Ref CacheDefaultUser, !Ref CacheUser, !Ref CacheReaderUser]")
    );
    for id in ["CacheDefaultUser", "CacheUser", "CacheReaderUser"] {
        assert_eq!(
            at(user(id), &["Engine"]),
            at(group, &["Engine"]),
            "{id}: the group's engine"
        );
    }
    let default = user("CacheDefaultUser");
    assert_eq!(at(default, &["UserName"]).as_str(), Some("default"));
    let (on, keys, commands) = access(at(default, &["AccessString"]).as_str().unwrap());
    assert!(
        !on && keys.is_empty() && commands.is_empty(),
        "the default user can do nothing"
    );
    let cache_keys = BTreeSet::from(["conversations#*".to_owned(), "messages#*".to_owned()]);
    for (id, wanted) in [
        ("CacheUser", &["del"][..]),
        (
            "CacheReaderUser",
            &[
                "del",
                "eval",
                "evalsha",
                "exists",
                "hget",
                "hmget",
                "hset",
                "pexpire",
                "script|load",
            ][..],
        ),
    ] {
        let props = user(id);
        assert_eq!(
            at(props, &["AuthenticationMode", "Type"]).as_str(),
            Some("iam"),
            "{id}"
        );
        assert_eq!(
            at(props, &["UserName"]),
            at(props, &["UserId"]),
            "{id}: IAM needs UserName = UserId"
        );
        assert!(
            props.get("Passwords").is_none(),
            "{id}: no password in the stack"
        );
        let (on, keys, commands) = access(at(props, &["AccessString"]).as_str().unwrap());
        assert!(on, "{id} is enabled");
        assert_eq!(keys, cache_keys, "{id}: only the cache's keys");
        assert_eq!(
            commands,
            wanted
                .iter()
                .map(|c| (*c).to_owned())
                .collect::<BTreeSet<_>>(),
            "{id}'s commands"
        );
    }

    // The function is told where and as whom; no cache table.
    let variables = at(
        function(&deployed),
        &["Properties", "Environment", "Variables"],
    );
    assert!(
        variables.get("CACHE_TABLE_NAME").is_none(),
        "one cache at a time"
    );
    assert_eq!(
        at(variables, &["VALKEY_ENDPOINT"]),
        &yaml(r#"!Sub "${Cache.Endpoint.Address}:${Cache.Endpoint.Port}""#)
    );
    assert_eq!(at(variables, &["VALKEY_USER"]), &yaml("!Ref CacheUser"));
    assert_eq!(at(variables, &["VALKEY_CACHE_NAME"]), &yaml("!Ref Cache"));
    let outputs = at(&deployed, &["Outputs"]);
    for output in [
        "ValkeyEndpoint",
        "ValkeyCacheName",
        "ValkeyUser",
        "ValkeyReaderUser",
    ] {
        assert!(outputs.get(output).is_some(), "output {output}");
    }
    assert!(outputs.get("CacheTableName").is_none());
}

#[test]
fn access_reads_keys_and_commands_and_refuses_categories() {
    let (on, keys, commands) = access("on ~a#* -@all +del +script|load");
    assert!(on);
    assert_eq!(keys, BTreeSet::from(["a#*".to_owned()]));
    assert_eq!(
        commands,
        BTreeSet::from(["del".to_owned(), "script|load".to_owned()])
    );
    assert!(std::panic::catch_unwind(|| access("on ~* +@all")).is_err());
    assert!(std::panic::catch_unwind(|| access("~* +get")).is_err());
}

/// The evaluator the two tests above rely on resolves what CloudFormation resolves.
#[test]
fn template_with_resolves_conditions_as_cloudformation_does() {
    let template = template();
    let s3 = conditions(&template, &parameters(&template, &[]));
    assert!(s3["FailuresToS3"] && !s3["FailuresToSqs"] && !s3["HasAlarmTopic"]);
    let sqs = template_with(&[("FailureDestination", "SQS")]);
    let resources = sqs.get("Resources").unwrap();
    assert!(resources.get("FailureQueue").is_some() && resources.get("FailureBucket").is_none());
    let policies: Vec<&str> = at(resource(&sqs, "ExecutionRole"), &["Properties", "Policies"])
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|p| at(p, &["PolicyName"]).as_str())
        .collect();
    assert!(
        policies.contains(&"execution-failure-queue"),
        "{policies:?}"
    );
    assert!(
        !policies.contains(&"execution-failure-bucket"),
        "{policies:?}"
    );
}
