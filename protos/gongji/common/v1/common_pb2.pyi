from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class InsuranceType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INSURANCE_TYPE_UNSPECIFIED: _ClassVar[InsuranceType]
    INSURANCE_TYPE_EMPLOYEE: _ClassVar[InsuranceType]
    INSURANCE_TYPE_RESIDENT: _ClassVar[InsuranceType]

class InsuranceStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INSURANCE_STATUS_UNSPECIFIED: _ClassVar[InsuranceStatus]
    INSURANCE_STATUS_NORMAL: _ClassVar[InsuranceStatus]
    INSURANCE_STATUS_SUSPENDED: _ClassVar[InsuranceStatus]
    INSURANCE_STATUS_TERMINATED: _ClassVar[InsuranceStatus]
    INSURANCE_STATUS_DECEASED: _ClassVar[InsuranceStatus]

class Relationship(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RELATIONSHIP_UNSPECIFIED: _ClassVar[Relationship]
    RELATIONSHIP_SPOUSE: _ClassVar[Relationship]
    RELATIONSHIP_PARENT: _ClassVar[Relationship]
    RELATIONSHIP_CHILD: _ClassVar[Relationship]
    RELATIONSHIP_SIBLING: _ClassVar[Relationship]
    RELATIONSHIP_PATERNAL_GRANDPARENT: _ClassVar[Relationship]
    RELATIONSHIP_MATERNAL_GRANDPARENT: _ClassVar[Relationship]
    RELATIONSHIP_PATERNAL_GRANDCHILD: _ClassVar[Relationship]
    RELATIONSHIP_MATERNAL_GRANDCHILD: _ClassVar[Relationship]

class Channel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_UNSPECIFIED: _ClassVar[Channel]
    CHANNEL_NATIONAL_APP: _ClassVar[Channel]
    CHANNEL_WECHAT: _ClassVar[Channel]
    CHANNEL_ALIPAY: _ClassVar[Channel]
    CHANNEL_WEB: _ClassVar[Channel]
    CHANNEL_COUNTER: _ClassVar[Channel]

class UseCategory(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    USE_CATEGORY_UNSPECIFIED: _ClassVar[UseCategory]
    USE_CATEGORY_OUTPATIENT: _ClassVar[UseCategory]
    USE_CATEGORY_INPATIENT: _ClassVar[UseCategory]
    USE_CATEGORY_CHRONIC_DISEASE_OUTPATIENT: _ClassVar[UseCategory]
    USE_CATEGORY_MATERNITY: _ClassVar[UseCategory]
    USE_CATEGORY_PHARMACY: _ClassVar[UseCategory]
    USE_CATEGORY_RESIDENT_CONTRIBUTION: _ClassVar[UseCategory]
    USE_CATEGORY_COMMERCIAL_HEALTH_INSURANCE: _ClassVar[UseCategory]
    USE_CATEGORY_LONG_TERM_CARE_INSURANCE: _ClassVar[UseCategory]
INSURANCE_TYPE_UNSPECIFIED: InsuranceType
INSURANCE_TYPE_EMPLOYEE: InsuranceType
INSURANCE_TYPE_RESIDENT: InsuranceType
INSURANCE_STATUS_UNSPECIFIED: InsuranceStatus
INSURANCE_STATUS_NORMAL: InsuranceStatus
INSURANCE_STATUS_SUSPENDED: InsuranceStatus
INSURANCE_STATUS_TERMINATED: InsuranceStatus
INSURANCE_STATUS_DECEASED: InsuranceStatus
RELATIONSHIP_UNSPECIFIED: Relationship
RELATIONSHIP_SPOUSE: Relationship
RELATIONSHIP_PARENT: Relationship
RELATIONSHIP_CHILD: Relationship
RELATIONSHIP_SIBLING: Relationship
RELATIONSHIP_PATERNAL_GRANDPARENT: Relationship
RELATIONSHIP_MATERNAL_GRANDPARENT: Relationship
RELATIONSHIP_PATERNAL_GRANDCHILD: Relationship
RELATIONSHIP_MATERNAL_GRANDCHILD: Relationship
CHANNEL_UNSPECIFIED: Channel
CHANNEL_NATIONAL_APP: Channel
CHANNEL_WECHAT: Channel
CHANNEL_ALIPAY: Channel
CHANNEL_WEB: Channel
CHANNEL_COUNTER: Channel
USE_CATEGORY_UNSPECIFIED: UseCategory
USE_CATEGORY_OUTPATIENT: UseCategory
USE_CATEGORY_INPATIENT: UseCategory
USE_CATEGORY_CHRONIC_DISEASE_OUTPATIENT: UseCategory
USE_CATEGORY_MATERNITY: UseCategory
USE_CATEGORY_PHARMACY: UseCategory
USE_CATEGORY_RESIDENT_CONTRIBUTION: UseCategory
USE_CATEGORY_COMMERCIAL_HEALTH_INSURANCE: UseCategory
USE_CATEGORY_LONG_TERM_CARE_INSURANCE: UseCategory
