"""moto's gaps that the deploy rehearsal meets, each patched here and named; nothing else about moto is changed.

Applied in the process that runs the ThreadedMotoServer, before the stack is created.
"""

from __future__ import annotations

from typing import Any


def patch() -> None:
    _rest_api_body()
    _lambda_version_attribute()
    _lambda_alias()


def _rest_api_body() -> None:
    """Gap: moto's CloudFormation creates an AWS::ApiGateway::RestApi from its Name alone and ignores its ``Body``,
    the OpenAPI document SAM generates with every route. The API then has no methods, and the
    AWS::ApiGateway::Deployment fails ("The REST API doesn't contain any methods"). Fixed by importing the
    Body with moto's own PutRestApi, which is what API Gateway does with it."""
    from moto.apigateway.models import RestAPI, apigateway_backends

    if getattr(RestAPI, "_switchboard_body_patch", False):
        return
    original = RestAPI.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def create(
        cls: Any, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kw: Any
    ) -> Any:
        api = original(cls, resource_name, cloudformation_json, account_id, region_name, **kw)
        body = cloudformation_json["Properties"].get("Body")
        if body:
            apigateway_backends[account_id][region_name].put_rest_api(api.id, body, fail_on_warnings=False, mode="overwrite")
        return api

    RestAPI.create_from_cloudformation_json = classmethod(create)  # type: ignore[method-assign,assignment]
    RestAPI._switchboard_body_patch = True  # type: ignore[attr-defined]


def _lambda_alias() -> None:
    """Gap: moto's CloudFormation has no AWS::Lambda::Alias (it warns and skips it), so every reference to the
    `live` alias that AutoPublishAlias creates (the event source mappings, the API's permissions and
    integrations) names nothing. Added with moto's own CreateAlias; ``Ref`` is the alias ARN, as in AWS."""
    from moto.awslambda.models import LambdaAlias, lambda_backends
    from moto.cloudformation import parsing
    from moto.core.common_models import CloudFormationModel

    if any(model.cloudformation_type() == "AWS::Lambda::Alias" for model in CloudFormationModel.__subclasses__()):
        return

    class CfnLambdaAlias(CloudFormationModel):
        __module__ = "moto.awslambda.switchboard_gaps"  # moto files each model under its service's name

        def __init__(self, alias: LambdaAlias) -> None:
            self.alias = alias

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::Lambda::Alias"

        @staticmethod
        def cloudformation_name_type() -> str:
            return "Name"

        @property
        def physical_resource_id(self) -> str:
            return str(self.alias.arn)

        @classmethod
        def create_from_cloudformation_json(  # type: ignore[override]
            cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kw: Any
        ) -> CfnLambdaAlias:
            props = cloudformation_json["Properties"]
            function = str(props["FunctionName"]).split(":function:")[-1]
            alias = lambda_backends[account_id][region_name].create_alias(
                name=props["Name"],
                function_name=function,
                function_version=str(props["FunctionVersion"]),
                description=props.get("Description", ""),
                routing_config=props.get("RoutingConfig"),
            )
            return cls(alias)

    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()


def _lambda_version_attribute() -> None:
    """Gap: moto's AWS::Lambda::Version publishes the version but answers no ``Fn::GetAtt`` (an AttributeError inside
    moto, a 500 to CreateStack), and each `live` alias names its version with ``!GetAtt <Version>.Version``."""
    from moto.awslambda.models import LambdaVersion

    def get_cfn_attribute(self: LambdaVersion, attribute_name: str) -> str:
        if attribute_name == "Version":
            return str(self.version)
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        raise UnformattedGetAttTemplateException()

    LambdaVersion.get_cfn_attribute = get_cfn_attribute  # type: ignore[attr-defined]
    LambdaVersion.has_cfn_attr = classmethod(lambda cls, attr: attr == "Version")  # type: ignore[assignment,method-assign]


def detach_queue_triggers() -> None:
    """Gap: moto runs a mapped function in Docker as each message is sent to its queue (and, without Docker, loses
    the message). Called once the stack exists: the mappings stay as created and listed; the rehearsal
    polls each mapped queue itself, as Lambda's pollers do."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    for queue in sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].queues.values():
        queue.lambda_event_source_mappings.clear()
