from analytics_service.cli import main

main()
