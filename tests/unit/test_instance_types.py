"""The static instance type list must not lag behind botocore's service model."""

import botocore.session

from backend.domain.instance_types import TRAINING_INSTANCE_TYPES


def test_every_instance_type_botocore_knows_is_accepted():
    model = botocore.session.get_session().get_service_model("sagemaker")
    known = set(model.shape_for("TrainingInstanceType").enum)
    assert known - TRAINING_INSTANCE_TYPES == set()
    assert TRAINING_INSTANCE_TYPES - known == set()
